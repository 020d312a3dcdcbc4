"""Grafana for the stack: provisioning files and dashboards generated from code.

The dashboards under grafana/dashboards/ are build output of grafana/generate.py
(``python -m grafana.generate``); a unit test fails when they drift from a fresh
build.
"""
