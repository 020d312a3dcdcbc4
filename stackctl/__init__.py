"""stackctl — the library behind tasks.py.

Every command's logic lives here as plain functions that return data; tasks.py
only parses options, calls these, prints and chooses the exit code.
"""

__version__ = "0.1.0"
