"""A test image of real clients that ignore proxy variables: Node (``fetch``, ``https.get``),
urllib3's ``PoolManager`` and a static Go program, on top of the sandbox image.

Nothing is downloaded: the host's Node binary (its libraries, libstdc++ and libgcc_s, are in
the sandbox image), the venv's urllib3 package (pure Python) and a Go program compiled here
with ``CGO_ENABLED=0`` and ``GOPROXY=off`` (cached under ~/.cache/coatcheck/test-clients).
The image is tagged with a digest of its inputs and the sandbox image it is built FROM, so it
is built once and rebuilt when any of them changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

SANDBOX_IMAGE = "coatcheck/sandbox:latest"
REPO = "coatcheck-test/clients"
LABEL = "org.coatcheck.test"
NODE = Path("/usr/bin/node")
CACHE = Path.home() / ".cache" / "coatcheck" / "test-clients"
PYTHONPATH = "/opt/test-clients/python"

GO_SOURCE = """\
// goget URL [HEADER VALUE]: http.Get with Go's defaults, status and body on stdout.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	req, err := http.NewRequest("GET", os.Args[1], nil)
	if err == nil && len(os.Args) > 3 {
		req.Header.Set(os.Args[2], os.Args[3])
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.DefaultClient.Do(req)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goget:", err)
		os.Exit(3)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, body)
}
"""

DOCKERFILE = f"""\
FROM {SANDBOX_IMAGE}
USER root
COPY node /usr/local/bin/node
COPY goget /usr/local/bin/goget
COPY python {PYTHONPATH}
ENV PYTHONPATH={PYTHONPATH}
USER 10001:10001
"""


class ClientsUnavailable(RuntimeError):
    """A client could not be prepared (the message says which and how to get it)."""


def go_binary() -> Path:
    """The Go client, built once per source and Go version."""
    go = shutil.which("go")
    if go is None:
        raise ClientsUnavailable("no Go toolchain: install it with `apt-get install golang-go`")
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout
    digest = hashlib.sha256((version + GO_SOURCE).encode()).hexdigest()[:16]
    out = CACHE / f"goget-{digest}"
    if out.is_file():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        (Path(work) / "main.go").write_text(GO_SOURCE)
        env = dict(os.environ, CGO_ENABLED="0", GOPROXY="off", GOFLAGS="-mod=mod",
                   GOCACHE=str(CACHE / "gocache"), GOPATH=str(CACHE / "gopath"),
                   GO111MODULE="off")  # fmt: skip
        built = subprocess.run([go, "build", "-o", str(Path(work) / "goget"), "main.go"],
                               cwd=work, env=env, capture_output=True, text=True)  # fmt: skip
        if built.returncode != 0:
            raise ClientsUnavailable(f"go build failed: {built.stderr.strip()}")
        os.replace(Path(work) / "goget", out)
    return out


def _digest(sandbox_id: str, go: Path, urllib3_dir: Path) -> str:
    h = hashlib.sha256(f"{sandbox_id}\0{DOCKERFILE}\0{go.name}\0".encode())
    st = NODE.stat()
    h.update(f"{st.st_size}:{st.st_mtime_ns}\0".encode())
    for path in sorted(urllib3_dir.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def clients_image(client: Any) -> str:
    """The clients image's tag, built if it is not there yet."""
    if not NODE.is_file():
        raise ClientsUnavailable(f"no Node at {NODE}: install nodejs (nodesource 20)")
    go = go_binary()
    spec = find_spec("urllib3")  # requests' own dependency, in the venv (not imported here)
    if spec is None or spec.origin is None:
        raise ClientsUnavailable("no urllib3 in this venv: `pip install urllib3`")
    urllib3_dir = Path(spec.origin).parent
    sandbox_id = client.api.inspect_image(SANDBOX_IMAGE)["Id"]
    tag = f"{REPO}:{_digest(sandbox_id, go, urllib3_dir)}"
    if client.images.list(name=tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="coatcheck-clients-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(DOCKERFILE)
        shutil.copy2(NODE, Path(ctx) / "node")
        shutil.copy2(go, Path(ctx) / "goget")
        shutil.copytree(urllib3_dir, Path(ctx) / "python" / "urllib3",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        for item in client.api.build(path=ctx, tag=tag, labels={LABEL: "clients"}, rm=True,
                                     forcerm=True, decode=True):  # fmt: skip
            if "error" in item:
                raise ClientsUnavailable(f"building {tag} failed: {item['error'].strip()}")
    for old in client.images.list(name=REPO):  # earlier builds of other inputs
        if tag not in old.tags:
            client.images.remove(old.id, force=True)
    return tag
