"""Job files: TOML parsed at the edge into frozen, validated types.

A job is a command (``command = [...]``) or an agent (an ``[agent]`` table), and the sandbox it
runs in: image, timeout, secrets, allowlist, ``--resolve`` mappings, upstream CAs, environment,
resources and the leak policy. Paths in a job file are relative to the file. Every check that
needs only the file happens here, when it is loaded; an error names the file, the field (a
dotted path) and the fix (``runner/jobproblems.py`` words them). The vault is read elsewhere
(``runner/jobcheck.py``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.errors import InvalidJobFile
from runner.engines import Engine, tool_problem
from runner.jobfields import (
    ENV_NAME,
    JOB_NAME,
    Duration,
    EnvValue,
    Files,
    ImageName,
    JobName,
    Mappings,
    Memory,
    ModelName,
    Names,
    Patterns,
    Positive,
    Strings,
    Text,
    quote,
    relative,
)
from runner.jobproblems import HINTS, FieldError, problems_of
from runner.jobrepo import Repo
from runner.schedule.fields import HINTS as SCHEDULE_HINTS
from runner.schedule.fields import GithubTrigger, Notify, Schedule, Triggers

HINTS.update(SCHEDULE_HINTS)  # the deployment tables' hints (fields.py can't be imported there)

API_KEY: Final = "ANTHROPIC_API_KEY"
API_HOST: Final = "api.anthropic.com"
TOOLS: Final = ("bash", "editor")
MAX_PROMPT_BYTES: Final = 1024 * 1024
_FROZEN: Final = ConfigDict(frozen=True, extra="forbid")


class Resources(BaseModel):
    """Sandbox limits; an unset one keeps the sandbox's default (sandbox/docker.py Limits)."""

    model_config = _FROZEN
    memory: Memory | None = None
    cpus: Annotated[StrictFloat, Field(gt=0, le=1024)] | None = None
    pids: Annotated[StrictInt, Field(ge=16, le=4_194_304)] | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Agent(BaseModel):
    """An agent job: a model with tools, run in the sandbox until it is done or a limit hits."""

    model_config = _FROZEN
    model: ModelName
    engine: Engine = "builtin"  # or "claude-code": Claude Code headless (runner/engines.py)
    prompt: Text
    prompt_file: Path | None = None  # where ``prompt`` came from, when it came from a file
    system: StrictStr | None = None
    max_turns: Annotated[StrictInt, Field(gt=0, le=10_000)] = 20
    max_tokens: Annotated[StrictInt, Field(gt=0, le=128_000)] = 8192
    budget_tokens: Positive | None = None
    tools: Strings = TOOLS
    workspace: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _read_prompt_file(cls, data: Any, info: ValidationInfo) -> Any:
        """Exactly one of ``prompt`` and ``prompt_file``; a file becomes its text here."""
        if not isinstance(data, dict):
            return data
        has_text, has_file = "prompt" in data, "prompt_file" in data
        if has_text and has_file:
            raise FieldError(
                "prompt_file", "give prompt or prompt_file, not both; remove one of them"
            )
        if not has_text and not has_file:
            raise FieldError(
                "prompt",
                'is required: give prompt = "..." or prompt_file = '
                '"prompts/task.md" (relative to the job file)',
            )
        if not has_file:
            return data
        raw = data["prompt_file"]
        if not isinstance(raw, str) or not raw:
            raise FieldError(
                "prompt_file",
                'must be a file relative to the job file, e.g. prompt_file = "prompts/task.md"',
            )
        path = relative(info, raw)
        try:
            if path.stat().st_size > MAX_PROMPT_BYTES:
                raise FieldError("prompt_file", f"{path} is larger than 1 MiB; shorten it")
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "can't be read"
            raise FieldError(
                "prompt_file",
                f"{path} {why}; give a UTF-8 text file, relative "
                'to the job file, e.g. prompt_file = "prompts/task.md"',
            ) from None
        if not text.strip():
            raise FieldError("prompt_file", f"{path} is empty; write the task in it")
        return {**data, "prompt": text, "prompt_file": str(path)}

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        engine = info.data.get("engine", "builtin")
        for i, tool in enumerate(tools):
            if (why := tool_problem(engine, tool)) is not None:
                raise FieldError(f"[{i}]", why)
            if tools.index(tool) != i:
                raise FieldError(f"[{i}]", f"{quote(tool)} is listed twice; list it once")
        return tools

    @field_validator("workspace", mode="before")
    @classmethod
    def _workspace_dir(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str) or not value:
            return value  # pydantic's own error, worded by jobproblems
        path = relative(info, value)
        if not path.is_dir():
            raise ValueError(
                f"{path} is not a directory; give an existing directory, relative "
                'to the job file, e.g. workspace = "repo"'
            )
        return path


class Job(BaseModel):
    """A job file's contents, checked. ``kind`` says which of command and agent it is."""

    model_config = _FROZEN
    name: JobName
    image: ImageName | None = None
    timeout: Duration | None = None
    secrets: Names = ()
    allow: Patterns = ()
    allow_opaque: Patterns = ()  # spliced without interception: no secret may be for them
    resolve: Mappings = ()
    upstream_ca: Files = ()
    env: dict[str, EnvValue] = Field(default_factory=dict)
    resources: Resources = Resources()
    on_leak: Literal["log", "block"] = "log"
    command: Strings | None = None
    agent: Agent | None = None
    repo: Repo | None = None  # [repo]: cloned into the agent's workspace before it starts
    schedule: Schedule | None = None  # coatcheck deploy: when it fires (scheduler.md)
    trigger: Triggers | None = None  # [trigger.github]: which webhook deliveries fire it
    notify: Notify | None = None  # who hears about failures, time-outs, misses

    @property
    def kind(self) -> Literal["command", "agent"]:
        return "agent" if self.agent is not None else "command"

    @property
    def ca_paths(self) -> tuple[Path, ...]:
        return tuple(Path(p) for p in self.upstream_ca)

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any, info: ValidationInfo) -> Any:
        stem = (info.context or {}).get("stem")
        if isinstance(data, dict) and "name" not in data and stem is not None:
            if not JOB_NAME.fullmatch(stem):
                raise FieldError(
                    "name",
                    f'the file name {quote(stem)} is no job name; set one, e.g. name = "ci-smoke"',
                )
            return {**data, "name": stem}
        return data

    @field_validator("secrets")
    @classmethod
    def _once_each(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise FieldError(f"[{i}]", f"{name} is listed twice; list it once")
        return names

    @field_validator("upstream_ca")
    @classmethod
    def _ca_files(cls, files: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        out = []
        for i, raw in enumerate(files):
            path = relative(info, raw)
            if not path.is_file():
                raise FieldError(
                    f"[{i}]",
                    f"{path} is not a file; give a PEM file relative "
                    'to the job file, e.g. upstream_ca = ["certs/ca.pem"]',
                )
            out.append(str(path))
        return tuple(out)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        from sandbox.docker import RESERVED_ENV

        for key in env:
            if not ENV_NAME.fullmatch(key):
                raise FieldError(
                    key,
                    "is not a variable name: use letters, digits and "
                    '"_", e.g. env = { LOG_LEVEL = "debug" }',
                )
            if key in RESERVED_ENV or key.startswith("COATCHECK_"):
                raise FieldError(
                    key, f"coatcheck sets {key} itself (proxy and trust); remove it from env"
                )
        return env

    @model_validator(mode="after")
    def _one_kind(self) -> Job:
        if self.command is None and self.agent is None:
            raise FieldError(
                "command",
                'a job needs a command or an [agent] table; e.g. command = ["make", "test"]',
            )
        if self.command is not None and self.agent is not None:
            raise FieldError(
                "agent", "a job has a command or an [agent] table, not both; remove one of them"
            )
        if self.command is not None and (not self.command or not self.command[0]):
            raise FieldError(
                "command", 'is empty; name the program first, e.g. command = ["make", "test"]'
            )
        if self.agent is not None and API_KEY not in self.secrets:
            raise FieldError(
                "secrets",
                f'an agent job needs the model\'s key: add {API_KEY}, e.g. secrets = ["{API_KEY}"]',
            )
        if self.repo is not None and self.agent is None:
            raise FieldError("repo", "[repo] is cloned for an agent; add an [agent] table")
        if self.repo is not None and self.repo.secret and self.repo.secret not in self.secrets:
            raise FieldError(
                "repo.secret",
                f"{self.repo.secret} must be one of the job's secrets too (it gets a "
                f'placeholder there); add it, e.g. secrets = ["{API_KEY}", "{self.repo.secret}"]',
            )
        for key in self.env:
            if key in self.secrets:
                raise FieldError(
                    f"env.{key}",
                    f"{key} is a secret of this job (the sandbox "
                    "gets its placeholder); remove it from env",
                )
        return self


_FIELDS: Final = {
    "": tuple(Job.model_fields),
    "agent": tuple(Agent.model_fields),
    "resources": tuple(Resources.model_fields),
    "repo": tuple(Repo.model_fields),
    "schedule": tuple(Schedule.model_fields),
    "trigger": tuple(Triggers.model_fields),
    "trigger.github": tuple(GithubTrigger.model_fields),
    "notify": tuple(Notify.model_fields),
}


def parse_job(data: dict[str, Any], *, source: Path, base: Path | None = None) -> Job:
    """``data`` (a parsed TOML document) as a Job; InvalidJobFile naming each problem.
    Relative paths start at ``base`` (default: the file's directory)."""
    context = {"base": (base or source.parent).resolve(), "stem": source.stem}
    try:
        return Job.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidJobFile(str(source), problems_of(exc, _FIELDS)) from None


def load_job(path: Path, *, base: Path | None = None) -> Job:
    """Read and check the job file at ``path``; InvalidJobFile says what to fix."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InvalidJobFile(
            str(path), (("", "no such file; give the path of a .toml job file"),)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = "is not UTF-8" if isinstance(exc, UnicodeDecodeError) else "can't be read"
        raise InvalidJobFile(str(path), (("", f"{why}; a job file is UTF-8 TOML"),)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidJobFile(
            str(path), (("", f"not valid TOML: {exc}; see https://toml.io for the syntax"),)
        ) from None
    return parse_job(data, source=path, base=base)
