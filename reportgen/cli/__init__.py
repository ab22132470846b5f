"""The `reportgen` command line: parses options, calls one engine function, turns errors into one line."""

from .main import cli, main  # noqa: F401
