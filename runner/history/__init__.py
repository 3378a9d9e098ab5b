"""The run history: deployments, runs and their retention, in one SQLite file
(``$COATCHECK_HOME/history.sqlite3``). See docs of ``db`` (connection rules), ``migrations``
(schema), ``deployments``, ``runs`` and ``retention``."""

from __future__ import annotations

from runner.history.db import history_path
from runner.history.deployments import Deployment
from runner.history.runrow import Run
from runner.history.store import History

__all__ = ["Deployment", "History", "Run", "history_path"]
