"""Fixtures providing the stack images (owned by the CI/images work)."""
