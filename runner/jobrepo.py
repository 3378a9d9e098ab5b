"""``[repo]`` in a job file: a Git repository cloned into the agent's workspace, through the
proxy, before the agent starts (``url``, ``branch``, and ``secret``: a vaulted HTTPS token,
sent as Basic auth ``x-access-token:<token>`` by its placeholder, so the real token is added by
the proxy only on the way to its own domains). Pure.
"""

from __future__ import annotations

import re
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr

from runner.jobfields import from_usage, quote
from vault.validate import validate_name

_BRANCH: Final = re.compile(r"[A-Za-z0-9._/-]{1,200}")


def repo_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f'{quote(value)} is not an HTTPS Git URL; e.g. url = "https://github.com/acme/widgets.git"'
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"{quote(value)}: no credentials, query or fragment in the URL; put a vaulted token "
            'in secret = "GITHUB_TOKEN" instead'
        )
    return value


def branch_name(value: str) -> str:
    if not _BRANCH.fullmatch(value) or ".." in value or value.startswith(("-", "/")):
        raise ValueError(f'{quote(value)} is not a branch name; e.g. branch = "main"')
    return value


class Repo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    url: Annotated[StrictStr, AfterValidator(repo_url)]
    branch: Annotated[StrictStr, AfterValidator(branch_name)] | None = None
    secret: Annotated[StrictStr, AfterValidator(from_usage(validate_name))] | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""
