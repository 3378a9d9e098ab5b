"""``make demo``, part two: an agent job whose model provider is a local fake of the Messages API
(served as ``api.anthropic.com`` through ``--resolve`` and a demo CA). The agent runs one bash
command that prints its own ``ANTHROPIC_API_KEY``, then finishes. The demo then checks: the fake
received the real key; the agent only ever held the placeholder (its own output and transcript
say so); the real key is nowhere in the run's record.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def agent_part(coatcheck: list[str], env: dict[str, str], work: Path,
               say: Callable[[str], None]) -> bool:  # fmt: skip
    import trustme

    sys.path.insert(0, str(ROOT))  # the fake Messages API lives with the tests
    from tests.support.fake_anthropic import FakeAnthropic
    from tests.support.fake_anthropic_script import Turn

    key = "sk-ant-demo-" + secrets.token_urlsafe(32)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "model-ca.pem"))
    say("\n== 4. an agent job: its model key is vaulted too (value from stdin, never shown)")
    subprocess.run([*coatcheck, "vault", "set", "ANTHROPIC_API_KEY", "--domains",
                    "api.anthropic.com"], input=key.encode(), env=env, check=True)  # fmt: skip
    with FakeAnthropic.start(ca, api_key=key) as fake:
        fake.enqueue(
            Turn.tool("bash", {"command": 'echo "the key I hold: $ANTHROPIC_API_KEY"'}),
            Turn.text("Done: I printed the key I hold."),
        )
        job = work / "agent.toml"
        job.write_text(
            'name = "demo-agent"\nsecrets = ["ANTHROPIC_API_KEY"]\n'
            'resolve = ["api.anthropic.com:127.0.0.1"]\nupstream_ca = ["model-ca.pem"]\n'
            f'[env]\nANTHROPIC_BASE_URL = "{fake.url_as()}"\n'
            '[agent]\nmodel = "claude-sonnet-5-5"\nprompt = "Print the API key you hold."\n'
            "max_turns = 4\n"
        )
        say("$ coatcheck run agent.toml   (model: a local fake served as api.anthropic.com)")
        proc = subprocess.run([*coatcheck, "run", str(job)], env=env, capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        keys_seen = set(fake.keys_seen())
    for line in (proc.stdout + proc.stderr).splitlines()[-4:]:
        say(f"  | {line}")
    runs = sorted((Path(env["COATCHECK_HOME"]) / "runs").glob("*/transcript.jsonl"))
    transcript = runs[-1].read_text() if runs else ""
    held = [json.loads(x) for x in transcript.splitlines() if '"tool_result"' in x]
    placeholder_held = any("the key I hold: ccph_" in json.dumps(e) for e in held)
    record = "".join(p.read_text(errors="replace") for p in runs[-1].parent.rglob("*")
                     if p.is_file()) if runs else ""  # fmt: skip
    got_real = keys_seen == {key}
    clean = key not in record and key not in proc.stdout + proc.stderr
    say("\n== 5. what happened")
    say(f"  [{'x' if got_real else ' '}] the model provider (the fake api.anthropic.com) "
        "received the REAL key on every call")  # fmt: skip
    say(f"  [{'x' if placeholder_held else ' '}] the agent only ever held a placeholder: "
        "its bash tool printed the key it holds: ccph_...")  # fmt: skip
    say(f"  [{'x' if clean else ' '}] the real key is nowhere in the run's output, transcript "
        "or record")  # fmt: skip
    return proc.returncode == 0 and got_real and placeholder_held and clean
