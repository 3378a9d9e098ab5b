"""The field types of a job file: each parses one TOML value or says how to write it.

Validators raise ``ValueError`` (or ``FieldError`` for a path inside the value) with the fix;
``runner/jobproblems.py`` puts the field path in front. Pure, except that paths are resolved
against the job file's directory (``context["base"]``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt, StrictStr, ValidationInfo

from core.domains import normalize_host, parse_pattern
from core.errors import UsageError
from runner.durations import parse_duration
from vault.validate import validate_name

JOB_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
_SIZE: Final = re.compile(r"(\d+)([bkmg])", re.IGNORECASE)
_SIZE_UNITS: Final = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def quote(value: object) -> str:
    """A value quoted as TOML writes strings."""
    return json.dumps(value, ensure_ascii=False)


def from_usage(check: Any) -> Any:
    """A validator from a function that raises our UsageError (which pydantic would not catch)."""

    def wrapped(value: Any) -> Any:
        try:
            return check(value)
        except UsageError as exc:
            raise ValueError(exc.message) from None

    return wrapped


def job_name(value: str) -> str:
    if not JOB_NAME.fullmatch(value):
        raise ValueError(
            f'{quote(value)} is not a job name: use letters, digits, ".", "-" and "_" '
            '(at most 64, a letter or digit first), e.g. name = "ci-smoke"'
        )
    return value


def image_name(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise ValueError(
            f'{quote(value)} is not an image name; e.g. image = "coatcheck/sandbox:latest"'
        )
    return value


def model_name(value: str) -> str:
    if not _MODEL_NAME.fullmatch(value):
        raise ValueError(f'{quote(value)} is not a model name; e.g. model = "claude-sonnet-4-5"')
    return value


def resolve_item(value: str) -> str:
    host, sep, addr = value.partition(":")
    fix = 'use "HOST:ADDR", e.g. resolve = ["api.internal.test:10.0.0.5"]'
    if not sep or not host or not addr:
        raise ValueError(f"{quote(value)} is not a mapping; {fix}")
    try:
        normalize_host(host)
    except UsageError:
        raise ValueError(f"{quote(value)}: {quote(host)} is not a host name; {fix}") from None
    try:
        ipaddress.ip_address(addr.strip("[]"))
    except ValueError:
        raise ValueError(f"{quote(value)}: {quote(addr)} is not an IP address; {fix}") from None
    return value


def memory_size(value: str) -> str:
    m = _SIZE.fullmatch(value.strip())
    if m is None or int(m[1]) * _SIZE_UNITS[m[2].lower()] < 6 * 1024**2:
        raise ValueError(f'{quote(value)} is not a size of at least 6m; e.g. memory = "2g"')
    return value.strip().lower()


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError('must not hold a NUL character; e.g. PORT = "8080"')
    return value


def nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty; write something, or leave the field out")
    return value


def relative(info: ValidationInfo, value: str) -> Path:
    base = (info.context or {}).get("base")
    path = Path(value).expanduser()
    return (Path(base) / path).resolve() if base is not None else path.resolve()


def as_tuple(value: Any) -> Any:
    """TOML arrays are lists; the frozen types hold tuples."""
    return tuple(value) if isinstance(value, list) else value


Names = Annotated[
    tuple[Annotated[StrictStr, AfterValidator(from_usage(validate_name))], ...],
    BeforeValidator(as_tuple),
]
Patterns = Annotated[
    tuple[Annotated[StrictStr, AfterValidator(from_usage(lambda v: str(parse_pattern(v))))], ...],
    BeforeValidator(as_tuple),
]
Mappings = Annotated[
    tuple[Annotated[StrictStr, AfterValidator(resolve_item)], ...], BeforeValidator(as_tuple)
]
Files = Annotated[tuple[StrictStr, ...], BeforeValidator(as_tuple)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Positive = Annotated[StrictInt, Field(gt=0)]


JobName = Annotated[StrictStr, AfterValidator(job_name)]
ImageName = Annotated[StrictStr, AfterValidator(image_name)]
ModelName = Annotated[StrictStr, AfterValidator(model_name)]
Memory = Annotated[StrictStr, AfterValidator(memory_size)]
EnvValue = Annotated[StrictStr, AfterValidator(no_nul)]
Text = Annotated[StrictStr, AfterValidator(nonblank)]
Strings = Annotated[tuple[StrictStr, ...], BeforeValidator(as_tuple)]
