"""The job-file tables of a deployment: ``[schedule]``, ``[trigger.github]`` and ``[notify]``.

Frozen pydantic models in the style of ``runner/jobfile.py``: validators raise ``ValueError``
or ``FieldError`` with the fix, and ``runner/jobproblems.py`` puts the field path in front.
``HINTS`` holds the per-field hints for that module. Pure.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from runner.durations import FIX as DURATION_FIX
from runner.durations import parse_duration
from runner.jobfields import Duration, Strings, as_tuple, from_usage, quote
from runner.jobproblems import FieldError
from runner.schedule import policy
from runner.schedule.cron import Cron, parse_cron, period
from runner.schedule.zones import parse_zone
from vault.validate import validate_name

NOTIFY_EVENTS: Final = ("failure", "timeout", "missed", "auto_pause", "success", "warning")
NOTIFY_DEFAULT: Final = ("failure", "timeout", "missed", "auto_pause", "warning")
_FROZEN: Final = ConfigDict(frozen=True, extra="forbid")
_EVENT: Final = re.compile(r"[a-z][a-z_]*")
_REPOSITORY: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}")
_LOGIN: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")

HINTS: Final = {
    "schedule": 'a table: [schedule] with cron = "30 2 * * *"',
    "schedule.cron": 'five cron fields or a shortcut, e.g. cron = "30 2 * * *" or "@hourly"',
    "schedule.timezone": 'an IANA zone name, e.g. timezone = "America/New_York"',
    "schedule.overlap": '"skip", "queue_one" or "allow", e.g. overlap = "skip"',
    "schedule.catchup": '"latest" or "none", e.g. catchup = "latest"',
    "schedule.jitter": f'0 or a duration: {DURATION_FIX}, e.g. jitter = "5m"',
    "schedule.max_runtime": f"a duration: {DURATION_FIX}",
    "schedule.min_interval": f"a duration: {DURATION_FIX}",
    "schedule.daily_cap": "a positive integer, e.g. daily_cap = 24",
    "schedule.start_deadline": f"a duration: {DURATION_FIX}",
    "schedule.pause_after_failures": "a positive integer, e.g. pause_after_failures = 5",
    "schedule.allow_when_paused": "true or false, e.g. allow_when_paused = true",
    "trigger": 'a table: [trigger.github] with events = ["push"]',
    "trigger.github": 'a table: [trigger.github] with events = ["push"]',
    "trigger.github.events": 'a list of GitHub event names, e.g. events = ["push", "pull_request"]',
    "trigger.github.actions": 'a list of action names, e.g. actions = ["opened", "synchronize"]',
    "trigger.github.repository": 'an "owner/name", e.g. repository = "acme/widgets"',
    "trigger.github.ignore_senders": 'a list of logins, e.g. ignore_senders = ["coatcheck[bot]"]',
    "notify": 'a table: [notify] with webhook_secret = "SLACK_WEBHOOK"',
    "notify.webhook_secret": 'a vaulted secret name, e.g. webhook_secret = "SLACK_WEBHOOK"',
    "notify.command": 'a list of strings, the program first, e.g. command = ["notify-send", "x"]',
    "notify.on": f'a list of events ({", ".join(NOTIFY_EVENTS)}), e.g. on = ["failure"]',
}


def _cron(value: str) -> str:
    return parse_cron(value).source


def _zone(value: str) -> str:
    parse_zone(value)
    return value.strip()


def _jitter(value: Any) -> Any:
    """0 (or "0", "0s") means none; anything else is a duration."""
    if not isinstance(value, bool) and value in (0, "0", "0s", "0m"):
        return 0.0
    return parse_duration(value)


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    for i, item in enumerate(items):
        if items.index(item) != i:
            raise FieldError(f"[{i}]", f"{quote(item)} is listed twice; list it once")
    return items


def _names(pattern: re.Pattern[str], what: str, example: str) -> Any:
    def check(items: tuple[str, ...]) -> tuple[str, ...]:
        for i, item in enumerate(items):
            if not pattern.fullmatch(item):
                raise FieldError(f"[{i}]", f"{quote(item)} is not {what}; e.g. {example}")
        return _unique(items)

    return check


CronText = Annotated[StrictStr, AfterValidator(_cron)]
ZoneName = Annotated[StrictStr, AfterValidator(_zone)]
Jitter = Annotated[float, BeforeValidator(_jitter)]
Positive = Annotated[StrictInt, Field(gt=0)]


class Schedule(BaseModel):
    """``[schedule]``: when a deployment fires and the limits on its runs."""

    model_config = _FROZEN
    cron: CronText
    timezone: ZoneName = "UTC"
    overlap: Literal["skip", "queue_one", "allow"] = "skip"
    catchup: Literal["latest", "none"] = "latest"
    jitter: Jitter = 0.0
    max_runtime: Duration = 3600.0
    min_interval: Duration = policy.MIN_INTERVAL.total_seconds()
    daily_cap: Positive | None = None
    start_deadline: Duration | None = None
    pause_after_failures: Positive = policy.PAUSE_AFTER
    allow_when_paused: StrictBool = False

    @property
    def compiled(self) -> Cron:
        return parse_cron(self.cron)

    @property
    def zone(self) -> ZoneInfo:
        return parse_zone(self.timezone)

    @property
    def period(self) -> timedelta:
        """The typical gap between slots, on the wall clock (DST aside)."""
        return period(self.compiled, parse_zone("UTC"), policy.REFERENCE)

    @property
    def deadline(self) -> timedelta:
        """``start_deadline``, or the smaller of the period and an hour."""
        if self.start_deadline is not None:
            return timedelta(seconds=self.start_deadline)
        return policy.default_deadline(self.period)

    def timing(self, name: str) -> policy.Timing:
        """What ``policy.plan_wake`` needs, for the deployment called ``name``."""
        offset = policy.jitter_offset(name, timedelta(seconds=self.jitter), self.period)
        return policy.Timing(self.compiled, self.zone, offset, self.deadline, self.catchup)

    @model_validator(mode="after")
    def _often_enough_apart(self) -> Schedule:
        verdict = policy.check_min_interval(self.compiled, timedelta(seconds=self.min_interval))
        if not verdict.allowed:
            raise FieldError("cron", verdict.reason)
        return self


class GithubTrigger(BaseModel):
    """``[trigger.github]``: which webhook deliveries start a run."""

    model_config = _FROZEN
    events: Annotated[
        tuple[StrictStr, ...],
        BeforeValidator(as_tuple),
        AfterValidator(_names(_EVENT, "a GitHub event name", 'events = ["push"]')),
    ]
    actions: (
        Annotated[
            tuple[StrictStr, ...],
            BeforeValidator(as_tuple),
            AfterValidator(_names(_EVENT, "an action name", 'actions = ["opened"]')),
        ]
        | None
    ) = None  # None: any action (an empty list would let none through)
    repository: StrictStr | None = None
    ignore_senders: Annotated[
        tuple[StrictStr, ...],
        BeforeValidator(as_tuple),
        AfterValidator(_names(_LOGIN, "a GitHub login", 'ignore_senders = ["coatcheck[bot]"]')),
    ] = ()

    @field_validator("events")
    @classmethod
    def _some_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        if not events:
            raise ValueError('is empty; list the events that start a run, e.g. events = ["push"]')
        if "ping" in events:
            raise FieldError(
                f"[{events.index('ping')}]",
                '"ping" never starts a run (it is answered 200); remove it',
            )
        return events

    @field_validator("repository")
    @classmethod
    def _owner_name(cls, value: str | None) -> str | None:
        if value is not None and not _REPOSITORY.fullmatch(value):
            raise ValueError(
                f'{quote(value)} is not "owner/name"; e.g. repository = "acme/widgets"'
            )
        return value


class Triggers(BaseModel):
    """``[trigger]``: the ways besides the schedule, the CLI and the API to start a run."""

    model_config = _FROZEN
    github: GithubTrigger | None = None


class Notify(BaseModel):
    """``[notify]``: who hears about failures (a Slack-style webhook, a host command, or both)."""

    model_config = _FROZEN
    webhook_secret: Annotated[StrictStr, AfterValidator(from_usage(validate_name))] | None = None
    command: Strings | None = None
    on: Annotated[tuple[StrictStr, ...], BeforeValidator(as_tuple)] = NOTIFY_DEFAULT

    @field_validator("on")
    @classmethod
    def _known_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        for i, event in enumerate(events):
            if event not in NOTIFY_EVENTS:
                raise FieldError(
                    f"[{i}]",
                    f"unknown event {quote(event)}; known: {', '.join(NOTIFY_EVENTS)}, "
                    'e.g. on = ["failure", "timeout"]',
                )
        return _unique(events)

    @model_validator(mode="after")
    def _somewhere(self) -> Notify:
        if self.command is not None and (not self.command or not self.command[0]):
            raise FieldError(
                "command", 'is empty; name the program first, e.g. command = ["notify-send", "x"]'
            )
        if self.webhook_secret is None and self.command is None:
            raise FieldError(
                "webhook_secret",
                'say where to send notices: webhook_secret = "SLACK_WEBHOOK" (a vaulted '
                'webhook URL) or command = ["notify-send", "coatcheck"], or both',
            )
        return self
