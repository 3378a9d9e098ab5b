"""runner/schedule/fields.py: the [schedule], [trigger.github] and [notify] tables, with errors
worded by runner/jobproblems.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from runner import jobproblems
from runner.jobproblems import problems_of
from runner.schedule.fields import HINTS, GithubTrigger, Notify, Schedule, Triggers

FIELDS = {"schedule": tuple(Schedule.model_fields)}


class Doc(BaseModel):
    """The tables as a job file holds them, so field paths read as in a real file."""

    schedule: Schedule | None = None
    trigger: Triggers | None = None
    notify: Notify | None = None


@pytest.fixture(autouse=True)
def hints(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job file's hints with ours merged in, as runner/jobproblems.py will hold them."""
    monkeypatch.setattr(jobproblems, "HINTS", {**jobproblems.HINTS, **HINTS})


def problems(model: type[BaseModel], data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    table = {Schedule: "schedule", Notify: "notify"}.get(model)
    doc = {table: data} if table else {"trigger": {"github": data}}
    with pytest.raises(ValidationError) as caught:
        Doc.model_validate(doc)
    return problems_of(caught.value, FIELDS)


def test_schedule_defaults() -> None:
    s = Schedule.model_validate({"cron": "30 2 * * *"})
    assert (s.timezone, s.overlap, s.catchup, s.jitter) == ("UTC", "skip", "latest", 0.0)
    assert (s.max_runtime, s.min_interval, s.daily_cap) == (3600.0, 300.0, None)
    assert (s.pause_after_failures, s.allow_when_paused) == (5, False)
    assert s.compiled.expr == "30 2 * * *" and s.zone.key == "UTC"
    assert s.period == timedelta(days=1)
    assert s.deadline == timedelta(hours=1)


def test_schedule_given() -> None:
    s = Schedule.model_validate(
        {"cron": "@hourly", "timezone": "America/New_York", "overlap": "queue_one",
         "catchup": "none", "jitter": "10m", "max_runtime": "20m", "min_interval": 60,
         "daily_cap": 30, "start_deadline": "5m", "pause_after_failures": 2,
         "allow_when_paused": True}
    )  # fmt: skip
    assert (s.jitter, s.max_runtime, s.min_interval, s.start_deadline) == (600, 1200, 60, 300)
    timing = s.timing("nightly-report")
    assert timing.zone.key == "America/New_York" and timing.catchup == "none"
    assert timing.deadline == timedelta(minutes=5)
    assert timedelta(0) <= timing.jitter <= timedelta(minutes=10)
    assert timing == s.timing("nightly-report")


def test_jitter_is_capped_at_half_the_period() -> None:
    s = Schedule.model_validate({"cron": "*/10 * * * *", "jitter": "2h"})
    assert all(s.timing(f"d{i}").jitter <= timedelta(minutes=5) for i in range(50))


def test_deadline_defaults_to_the_period_when_shorter() -> None:
    assert Schedule.model_validate({"cron": "*/15 * * * *"}).deadline == timedelta(minutes=15)


@pytest.mark.parametrize("zero", [0, "0", "0s"], ids=str)
def test_zero_jitter(zero: object) -> None:
    assert Schedule.model_validate({"cron": "@daily", "jitter": zero}).jitter == 0.0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ("cron", "is required: five cron fields or a shortcut")),
        ({"cron": "*/7 * * * *"},
         ("cron", '"*/7 * * * *" has a 4m gap (00:56 to 01:00); min_interval is 5m: use a '
                  'coarser cron, or set min_interval = "4m"')),
        ({"cron": "0 0 31 2 *"}, ("cron", '"0 0 31 2 *" never fires')),
        ({"cron": "@reboot"}, ("cron", '"@reboot": @reboot is not a schedule')),
        ({"cron": "0 0 * * * *"}, ("cron", '"0 0 * * * *" has 6 fields')),
        ({"cron": "@daily", "timezone": "EST"}, ("timezone", '"EST" is not an IANA')),
        ({"cron": "@daily", "timezone": "+02:00"}, ("timezone", '"+02:00" is an offset')),
        ({"cron": "@daily", "overlap": "parallel"},
         ("overlap", 'must be "skip", "queue_one" or "allow"')),
        ({"cron": "@daily", "catchup": "all"}, ("catchup", 'must be "latest" or "none"')),
        ({"cron": "@daily", "jitter": "soon"}, ("jitter", '"soon" is not a duration')),
        ({"cron": "@daily", "max_runtime": "8d"}, ("max_runtime", '"8d" is not a duration')),
        ({"cron": "@daily", "daily_cap": 0}, ("daily_cap", "must be a positive integer")),
        ({"cron": "@daily", "pause_after_failures": 0},
         ("pause_after_failures", "must be a positive integer")),
        ({"cron": "@daily", "allow_when_paused": "yes"},
         ("allow_when_paused", "must be true or false")),
        ({"cron": "@daily", "every": "1h"}, ("every", "unknown field")),
    ],
    ids=["missing-cron", "min-interval", "feb-31", "reboot", "six-fields", "abbreviation",
         "offset", "overlap", "catchup", "jitter", "max-runtime", "daily-cap",
         "pause-after", "allow-when-paused", "unknown"],
)  # fmt: skip
def test_schedule_problems(data: dict[str, Any], expected: tuple[str, str]) -> None:
    found = problems(Schedule, data)
    assert len(found) == 1
    assert found[0][0] == f"schedule.{expected[0]}"
    assert expected[1] in found[0][1]


def test_github_trigger() -> None:
    t = Triggers.model_validate(
        {"github": {"events": ["push", "pull_request"], "actions": ["opened"],
                    "repository": "acme/widgets", "ignore_senders": ["coatcheck[bot]"]}}
    )  # fmt: skip
    assert t.github is not None
    assert t.github.events == ("push", "pull_request")
    assert t.github.ignore_senders == ("coatcheck[bot]",)
    assert Triggers.model_validate({}).github is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ("events", "is required")),
        ({"events": []}, ("events", "is empty; list the events")),
        ({"events": ["push", "ping"]}, ("events[1]", '"ping" never starts a run')),
        ({"events": ["Push"]}, ("events[0]", '"Push" is not a GitHub event name')),
        ({"events": ["push", "push"]}, ("events[1]", '"push" is listed twice')),
        ({"events": ["push"], "actions": ["opened!"]}, ("actions[0]", "is not an action name")),
        ({"events": ["push"], "repository": "widgets"},
         ("repository", '"widgets" is not "owner/name"; e.g. repository = "acme/widgets"')),
        ({"events": ["push"], "ignore_senders": ["bad login"]},
         ("ignore_senders[0]", "is not a GitHub login")),
    ],
    ids=["missing", "empty", "ping", "case", "twice", "action", "repository", "sender"],
)  # fmt: skip
def test_github_problems(data: dict[str, Any], expected: tuple[str, str]) -> None:
    (found,) = problems(GithubTrigger, data)
    assert found[0] == f"trigger.github.{expected[0]}" and expected[1] in found[1]


def test_notify() -> None:
    n = Notify.model_validate({"webhook_secret": "SLACK_WEBHOOK"})
    assert n.on == ("failure", "timeout", "missed", "auto_pause", "warning")
    assert n.command is None
    n = Notify.model_validate({"command": ["notify-send", "coatcheck"], "on": ["success"]})
    assert n.command == ("notify-send", "coatcheck") and n.on == ("success",)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, ("webhook_secret", "say where to send notices")),
        ({"webhook_secret": "1SLACK"}, ("webhook_secret", "must not start with a digit")),
        ({"command": []}, ("command", "is empty; name the program first")),
        ({"command": ["x"], "on": ["failure", "oops"]}, ("on[1]", 'unknown event "oops"')),
        ({"command": ["x"], "on": ["missed", "missed"]}, ("on[1]", "is listed twice")),
    ],
    ids=["nowhere", "secret-name", "empty-command", "unknown-event", "twice"],
)
def test_notify_problems(data: dict[str, Any], expected: tuple[str, str]) -> None:
    (found,) = problems(Notify, data)
    assert found[0] == f"notify.{expected[0]}" and expected[1] in found[1]


def test_models_are_frozen() -> None:
    s = Schedule.model_validate({"cron": "@daily"})
    with pytest.raises(ValidationError):
        s.cron = "@hourly"  # type: ignore[misc]


def test_hints_cover_every_field() -> None:
    for model, prefix in ((Schedule, "schedule"), (GithubTrigger, "trigger.github"),
                          (Notify, "notify")):  # fmt: skip
        for name in model.model_fields:
            assert f"{prefix}.{name}" in HINTS
