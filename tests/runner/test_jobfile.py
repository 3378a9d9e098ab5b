"""Job files (runner/jobfile.py): good files parse into frozen types; each bad one is refused
with the file, the exact field path and the fix, one line per problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.errors import InvalidJobFile, UsageError
from runner.jobfile import Job, load_job

AGENT = """
secrets = ["ANTHROPIC_API_KEY"]
[agent]
model = "claude-sonnet-4-5"
"""


@pytest.fixture
def jobdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a prompt file, a CA file and a workspace next to the job files; the
    current directory, so messages name ``jobs/job.toml`` as a user would type it."""
    jobs = tmp_path / "jobs"
    (jobs / "prompts").mkdir(parents=True)
    (jobs / "prompts" / "task.md").write_text("Summarize the failing tests.\n")
    (jobs / "prompts" / "empty.md").write_text("  \n")
    (jobs / "prompts" / "binary.md").write_bytes(b"\xff\xfe\x00bad")
    (jobs / "certs").mkdir()
    (jobs / "certs" / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (jobs / "repo").mkdir()
    monkeypatch.chdir(tmp_path)
    return jobs


def load(jobdir: Path, text: str, name: str = "job.toml") -> Job:
    path = jobdir / name
    path.write_text(text)
    return load_job(Path("jobs") / name)


# -- good files ---------------------------------------------------------------------------------
def _minimal(job: Job) -> None:
    assert (job.name, job.kind, job.command) == ("job", "command", ("true",))
    assert (job.image, job.timeout, job.secrets, job.on_leak) == (None, None, (), "log")
    assert job.env == {} and job.resources.given() == {}


def _full(job: Job) -> None:
    assert job.name == "ci-smoke" and job.image == "my/image:1"
    assert job.timeout == 300.0
    assert job.secrets == ("GITHUB_TOKEN", "NPM_TOKEN")
    assert job.allow == ("api.example.com", "*.example.org")  # normalized
    assert job.resolve == ("api.internal.test:10.0.0.5",)
    [ca] = job.ca_paths
    assert ca.is_absolute() and ca.name == "ca.pem" and ca.parent.name == "certs"
    assert job.env == {"LOG_LEVEL": "debug"}
    assert job.resources.given() == {"memory": "2g", "cpus": 1.5, "pids": 512}
    assert job.on_leak == "block"


def _agent_defaults(job: Job) -> None:
    assert job.kind == "agent" and job.command is None and job.agent is not None
    a = job.agent
    assert (a.model, a.prompt, a.prompt_file, a.system) == (
        "claude-sonnet-4-5",
        "Fix it",
        None,
        None,
    )
    assert (a.max_turns, a.max_tokens, a.budget_tokens) == (20, 8192, None)
    assert a.tools == ("bash", "editor") and a.workspace is None


def _agent_file(job: Job) -> None:
    assert job.agent is not None
    assert job.agent.prompt == "Summarize the failing tests.\n"
    assert job.agent.prompt_file is not None and job.agent.prompt_file.is_absolute()
    assert job.agent.workspace is not None and job.agent.workspace.name == "repo"
    assert job.agent.tools == ("bash",)
    assert (job.agent.max_turns, job.agent.max_tokens, job.agent.budget_tokens) == (5, 1000, 9000)


# fmt: off
GOOD: list[tuple[str, str, Callable[[Job], None]]] = [
    ("minimal-command", 'command = ["true"]', _minimal),
    ("full-command", """
name = "ci-smoke"
image = "my/image:1"
timeout = "5m"
secrets = ["GITHUB_TOKEN", "NPM_TOKEN"]
allow = ["API.Example.com", "*.example.org"]
resolve = ["api.internal.test:10.0.0.5"]
upstream_ca = ["certs/ca.pem"]
env = { LOG_LEVEL = "debug" }
resources = { memory = "2G", cpus = 1.5, pids = 512 }
on_leak = "block"
command = ["make", "test"]
""", _full),
    ("timeout-in-seconds", 'timeout = 90\ncommand = ["true"]',
     lambda job: job.timeout == 90.0 or pytest.fail("timeout")),
    ("cpus-as-integer", 'resources = { cpus = 2 }\ncommand = ["true"]',
     lambda job: job.resources.cpus == 2.0 or pytest.fail("cpus")),
    ("agent-defaults", AGENT + 'prompt = "Fix it"\n', _agent_defaults),
    ("agent-prompt-file-workspace-tools", AGENT + """prompt_file = "prompts/task.md"
workspace = "repo"
tools = ["bash"]
max_turns = 5
max_tokens = 1000
budget_tokens = 9000
""", _agent_file),
    ("agent-without-tools", AGENT + 'prompt = "Answer"\ntools = []\n',
     lambda job: job.agent is not None and job.agent.tools == () or pytest.fail("tools")),
]
# fmt: on


@pytest.mark.parametrize(("text", "check"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_job_files_load(jobdir: Path, text: str, check: Callable[[Job], None]) -> None:
    check(load(jobdir, text))


def test_a_job_is_frozen(jobdir: Path) -> None:
    job = load(jobdir, 'command = ["true"]\nsecrets = ["T"]')
    with pytest.raises(ValidationError):
        job.name = "other"  # type: ignore[misc]
    assert isinstance(job.secrets, tuple) and isinstance(job.command, tuple)


# -- bad files: (id, TOML, field path, the fix or the words that say what is wrong) ----------
CMD = 'command = ["true"]\n'
# fmt: off
BAD = [
    ("unknown-field", 'comand = ["true"]', "comand", "unknown field; did you mean command?"),
    ("unknown-agent-field", AGENT + 'prompt = "x"\nmaxturns = 3', "agent.maxturns",
     "did you mean max_turns?"),
    ("unknown-resource", CMD + 'resources = { disk = "1g" }', "resources.disk",
     "the [resources] table takes memory, cpus, pids"),
    ("no-command-no-agent", 'name = "x"', "command", "a job needs a command or an [agent] table"),
    ("command-and-agent", CMD + AGENT + 'prompt = "x"', "agent", "not both; remove one"),
    ("empty-command", "command = []", "command", 'is empty; name the program first'),
    ("command-string", 'command = "make test"', "command",
     'must be a list of strings, the program first, e.g. command = ["make", "test"]'),
    ("command-number", 'command = ["sleep", 5]', "command[1]", "must be a list of strings"),
    ("bad-name", CMD + 'name = "my job"', "name", '"my job" is not a job name'),
    ("name-number", CMD + "name = 5", "name", 'must be a job name of letters'),
    ("bad-timeout", CMD + 'timeout = "5 minutes"', "timeout",
     'is not a duration: seconds (timeout = 90) or a number with a unit s, m or h'),
    ("zero-timeout", CMD + "timeout = 0", "timeout", "must be at least 0.1 seconds"),
    ("bad-secret-name", CMD + 'secrets = ["OK", "1BAD"]', "secrets[1]",
     "invalid secret name '1BAD'"),
    ("secret-twice", CMD + 'secrets = ["T", "T"]', "secrets[1]", "T is listed twice"),
    ("secrets-string", CMD + 'secrets = "T"', "secrets",
     'must be a list of vaulted secret names, e.g. secrets = ["GITHUB_TOKEN"]'),
    ("allow-everything", CMD + 'allow = ["*"]', "allow[0]", 'use "*.example.com"'),
    ("resolve-not-an-address", CMD + 'resolve = ["api.test:not-ip"]', "resolve[0]",
     '"not-ip" is not an IP address; use "HOST:ADDR"'),
    ("resolve-no-colon", CMD + 'resolve = ["api.test"]', "resolve[0]", 'use "HOST:ADDR"'),
    ("missing-ca", CMD + 'upstream_ca = ["certs/ca.pem", "nope.pem"]', "upstream_ca[1]",
     'is not a file; give a PEM file relative to the job file'),
    ("env-number", CMD + "env = { PORT = 8080 }", "env.PORT",
     'must be a string, e.g. env = { PORT = "8080" }'),
    ("env-reserved", CMD + 'env = { HTTPS_PROXY = "http://exfil.invalid" }', "env.HTTPS_PROXY",
     "coatcheck sets HTTPS_PROXY itself"),
    ("env-coatcheck", CMD + 'env = { COATCHECK_RUN_ID = "x" }', "env.COATCHECK_RUN_ID",
     "remove it from env"),
    ("env-bad-name", CMD + 'env = { 1X = "v" }', "env.1X", "is not a variable name"),
    ("env-is-a-secret", CMD + 'secrets = ["T"]\nenv = { T = "x" }', "env.T",
     "T is a secret of this job"),
    ("memory-no-unit", CMD + 'resources = { memory = "512" }', "resources.memory",
     'is not a size of at least 6m; e.g. memory = "2g"'),
    ("cpus-zero", CMD + "resources = { cpus = 0 }", "resources.cpus",
     "must be a positive number of CPUs, e.g. cpus = 1.5"),
    ("pids-too-few", CMD + "resources = { pids = 4 }", "resources.pids",
     "must be a whole number from 16 up, e.g. pids = 512"),
    ("on-leak-drop", CMD + 'on_leak = "drop"', "on_leak",
     'must be "log" or "block", e.g. on_leak = "block"'),
    ("agent-not-a-table", 'agent = "claude"\nsecrets = ["ANTHROPIC_API_KEY"]', "agent",
     "must be a table"),
    ("agent-no-model", 'secrets = ["ANTHROPIC_API_KEY"]\n[agent]\nprompt = "x"', "agent.model",
     'is required: a model name, e.g. model = "claude-sonnet-4-5"'),
    ("agent-no-prompt", AGENT, "agent.prompt",
     'is required: give prompt = "..." or prompt_file = "prompts/task.md"'),
    ("agent-prompt-and-file", AGENT + 'prompt = "x"\nprompt_file = "prompts/task.md"',
     "agent.prompt_file", "give prompt or prompt_file, not both"),
    ("agent-blank-prompt", AGENT + 'prompt = "  "', "agent.prompt", "is empty"),
    ("agent-prompt-file-missing", AGENT + 'prompt_file = "prompts/nope.md"', "agent.prompt_file",
     "can't be read; give a UTF-8 text file, relative to the job file"),
    ("agent-prompt-file-empty", AGENT + 'prompt_file = "prompts/empty.md"', "agent.prompt_file",
     "is empty; write the task in it"),
    ("agent-prompt-file-binary", AGENT + 'prompt_file = "prompts/binary.md"',
     "agent.prompt_file", "is not UTF-8 text"),
    ("agent-max-turns-zero", AGENT + 'prompt = "x"\nmax_turns = 0', "agent.max_turns",
     "must be a positive integer, e.g. max_turns = 20"),
    ("agent-max-turns-string", AGENT + 'prompt = "x"\nmax_turns = "20"', "agent.max_turns",
     "must be a positive integer, e.g. max_turns = 20"),
    ("agent-max-turns-float", AGENT + 'prompt = "x"\nmax_turns = 2.5', "agent.max_turns",
     "must be a positive integer, e.g. max_turns = 20"),
    ("agent-max-tokens-huge", AGENT + 'prompt = "x"\nmax_tokens = 200000', "agent.max_tokens",
     "must be a positive integer up to 128000, e.g. max_tokens = 8192"),
    ("agent-budget-negative", AGENT + 'prompt = "x"\nbudget_tokens = -1', "agent.budget_tokens",
     "must be a positive integer, e.g. budget_tokens = 500000"),
    ("agent-unknown-tool", AGENT + 'prompt = "x"\ntools = ["bash", "web"]', "agent.tools[1]",
     'unknown tool "web"; known tools: bash, editor'),
    ("agent-tool-twice", AGENT + 'prompt = "x"\ntools = ["bash", "bash"]', "agent.tools[1]",
     '"bash" is listed twice'),
    ("agent-workspace-missing", AGENT + 'prompt = "x"\nworkspace = "nope"', "agent.workspace",
     "is not a directory; give an existing directory, relative to the job file"),
    ("agent-system-number", AGENT + 'prompt = "x"\nsystem = 1', "agent.system",
     "must be a string"),
    ("agent-without-api-key", '[agent]\nmodel = "m"\nprompt = "x"', "secrets",
     'an agent job needs the model\'s key: add ANTHROPIC_API_KEY, '
     'e.g. secrets = ["ANTHROPIC_API_KEY"]'),
]
# fmt: on


@pytest.mark.parametrize(("text", "field", "fix"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_job_files_name_the_field_and_the_fix(
    jobdir: Path, text: str, field: str, fix: str
) -> None:
    with pytest.raises(InvalidJobFile) as caught:
        load(jobdir, text)
    err = caught.value
    assert isinstance(err, UsageError) and err.exit_code == 2
    fields = [f for f, _ in err.problems]
    assert field in fields, err.problems
    message = dict(err.problems)[field]
    assert fix in message, message
    assert f"jobs/job.toml: {field}: {message}" in str(err).splitlines()


def test_the_brief_example_word_for_word(jobdir: Path) -> None:
    with pytest.raises(InvalidJobFile) as caught:
        load(jobdir, AGENT + 'prompt = "x"\nmax_turns = -3', "x.toml")
    assert str(caught.value) == (
        "jobs/x.toml: agent.max_turns: must be a positive integer, e.g. max_turns = 20"
    )


def test_every_problem_gets_its_own_line_and_no_pydantic_dump(jobdir: Path) -> None:
    text = 'name = "a b"\ntimeout = "soon"\non_leak = 1\ncommand = ["x", 2]\nextra = 1'
    with pytest.raises(InvalidJobFile) as caught:
        load(jobdir, text)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "name",
        "timeout",
        "on_leak",
        "command[1]",
        "extra",
    ]
    for word in ("pydantic", "Input should", "errors.pydantic.dev", "validation error"):
        assert word not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'command = ["true"\n', "not valid TOML: "),
        (b'command = ["true"]\nname = "\xff"\n', "is not UTF-8; a job file is UTF-8 TOML"),
        (None, "no such file; give the path of a .toml job file"),
    ],
    ids=["not-toml", "not-utf8", "missing"],
)
def test_unreadable_files_are_named_with_the_fix(
    jobdir: Path, content: bytes | None, words: str
) -> None:
    path = jobdir / "broken.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidJobFile) as caught:
        load_job(Path("jobs/broken.toml"))
    assert str(caught.value).startswith("jobs/broken.toml: ")
    assert words in str(caught.value)
    assert caught.value.problems[0][0] == ""


def test_a_file_name_that_is_no_job_name_asks_for_a_name(jobdir: Path) -> None:
    with pytest.raises(InvalidJobFile) as caught:
        load(jobdir, CMD, "my job.toml")
    assert caught.value.problems == (
        ("name", 'the file name "my job" is no job name; set one, e.g. name = "ci-smoke"'),
    )
