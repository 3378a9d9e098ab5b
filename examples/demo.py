"""``make demo``: the coat check, end to end, on this machine only.

1. Vault a demo secret (a fresh random value, on stdin; never printed).
2. Start a local TLS upstream as ``api.demo.test`` (its own test CA), which records what it gets
   and echoes the Authorization header back, like a careless API would.
3. ``coatcheck run`` a sandboxed ``curl`` that uses ``$DEMO_TOKEN`` and also tries a host that is
   not allowlisted.
4. Check and say, in plain words: the upstream got the real value; the sandbox only ever saw the
   placeholder; the other host was refused.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NAME = "api.demo.test"
REFUSED = "not-allowed.demo.test"


def _upstream(cert_dir: Path) -> tuple[ThreadingHTTPServer, list[str], Path]:
    import trustme

    ca = trustme.CA()
    ca_file = cert_dir / "demo-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            auth = self.headers.get("Authorization", "")
            seen.append(auth)
            body = json.dumps({"you_sent": auth}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(NAME).configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen, ca_file


def _say(text: str = "") -> None:
    print(text, flush=True)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="coatcheck-demo-"))
    env = dict(os.environ)
    env.setdefault("COATCHECK_HOME", str(work / "home"))
    env.setdefault("COATCHECK_VAULT_KEY_FILE", str(work / "vault.key"))
    coatcheck = [sys.executable, "-I", "-m", "runner.cli"]
    value = "demo-" + secrets.token_urlsafe(24)
    server, seen, ca_file = _upstream(work)
    port = server.server_address[1]
    try:
        _say("== 1. vault a demo secret (value read from stdin, never shown)")
        _say(f"$ coatcheck vault set DEMO_TOKEN --domains {NAME} < (random value)")
        subprocess.run([*coatcheck, "vault", "set", "DEMO_TOKEN", "--domains", NAME],
                       input=value.encode(), env=env, check=True)  # fmt: skip
        script = (
            'echo "inside the sandbox: DEMO_TOKEN=$DEMO_TOKEN"; '
            f'curl -sS -H "Authorization: Bearer $DEMO_TOKEN" https://{NAME}:{port}/whoami; '
            f"curl -sS -o /dev/null https://{REFUSED}/ 2>&1; true"
        )
        _say(f"\n== 2. run a sandboxed curl against https://{NAME}:{port} (a local TLS server)")
        _say(f"$ coatcheck run --secret DEMO_TOKEN --resolve {NAME}:127.0.0.1 "
             f"--upstream-ca demo-ca.pem -- sh -c '...'")  # fmt: skip
        proc = subprocess.run(
            [*coatcheck, "run", "--secret", "DEMO_TOKEN", "--resolve", f"{NAME}:127.0.0.1",
             "--upstream-ca", str(ca_file), "--", "sh", "-c", script],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        output = proc.stdout + proc.stderr
        for line in output.splitlines():
            _say(f"  | {line}")
        if proc.returncode != 0:
            _say(f"\ncoatcheck run failed with exit code {proc.returncode}")
            return 1
        audit = Path(env["COATCHECK_HOME"]) / "proxy" / "audit.jsonl"
        lines = [json.loads(x) for x in audit.read_text().splitlines()] if audit.exists() else []
        placeholder = next(
            (w.split("=", 1)[1] for w in output.split() if w.startswith("DEMO_TOKEN=")), ""
        )
        got_real = f"Bearer {value}" in seen
        sandbox_clean = value not in output and placeholder.startswith("ccph_")
        refused = any(x.get("host") == REFUSED and x.get("decision") == "deny" for x in lines)
        reason = next((x.get("reason") for x in lines if x.get("host") == REFUSED), "?")
        log_clean = audit.exists() and value not in audit.read_text()
        _say("\n== 3. what happened")
        _say(f"  [{'x' if got_real else ' '}] the upstream {NAME} received the REAL value of "
             "DEMO_TOKEN (checked byte for byte; not shown here)")  # fmt: skip
        _say(f"  [{'x' if sandbox_clean else ' '}] the sandbox only ever saw the placeholder "
             f"{placeholder}: the real value is nowhere in its output, even in the upstream's "
             "echo, which the proxy scrubbed back to the placeholder")  # fmt: skip
        _say(f"  [{'x' if refused else ' '}] {REFUSED} is not allowlisted and was refused "
             f"(403, reason: {reason})")  # fmt: skip
        _say(f"  [{'x' if log_clean else ' '}] the proxy's audit log names the secret it "
             "injected, never its value")  # fmt: skip
        ok = got_real and sandbox_clean and refused and log_clean
        sys.path.insert(0, str(Path(__file__).parent))
        from demo_agent import agent_part

        ok = agent_part(coatcheck, env, work, _say) and ok
        _say("\ndemo " + ("passed" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
