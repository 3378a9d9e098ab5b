"""Errors of the run history; they sit in core.errors' tree (``CoatcheckError`` and
``UsageError``), so the CLI prints them with their fix and exit code.

    CoatcheckError
    ├── HistoryError           exit 1: the history database can't be opened or used
    │   └── HistoryTooNew      written by a newer coatcheck than this one
    └── UsageError             exit 2
        ├── RunNotFound        no run with that id (or the prefix is ambiguous)
        ├── DeploymentNotFound no deployment of that name
        └── DeploymentArchived archived deployments are final
"""

from __future__ import annotations

from core.errors import CoatcheckError, UsageError


class HistoryError(CoatcheckError):
    pass


class HistoryTooNew(HistoryError):
    pass


class RunNotFound(UsageError):
    pass


class DeploymentNotFound(UsageError):
    pass


class DeploymentArchived(UsageError):
    pass
