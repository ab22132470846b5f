"""The one error type reportgen raises for bad input; the CLI turns it into one line."""

from __future__ import annotations


class ReportgenError(Exception):
    """A problem the user can fix: bad file, bad option, existing output.

    The message is one line that names the file (or option) and the problem.
    """


class DataError(ReportgenError):
    """A data file (images, labels, probabilities) is missing, corrupt or inconsistent."""


class ModelError(ReportgenError):
    """A model file is missing, unreadable, or does not fit the data."""


class OutputError(ReportgenError):
    """The report folder cannot be written, or exists and --force was not given."""
