"""The benchmark's verdicts and its Markdown: one PASS/MISS per target (``n/a`` when the piece
measured is not built, or the part was skipped), and tables ready for the README's
"Performance" section. Everything here reads the results dict only (the JSON file)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

NA = "n/a (not built)"
SKIPPED = "n/a (skipped)"
FAILED = "n/a (failed: see the errors)"
TARGETS = {
    "warm": 1.3,  # warm run / bare docker
    "cold": 5.0,  # cold run / bare docker
    "cli_cpu_ms": 80.0,  # the CLI's own CPU per warm run
    "tput": 0.95,  # coatcheck (1 worker, 1 run) / mitmdump, keep-alive
    "p50_ms": 1.0,  # coatcheck p50 - mitmdump p50
    "workers": 1.4,  # 4 runs: default workers / 1 worker
    "bulk": 0.9,  # coatcheck / mitmdump, each direction
    "opaque": 0.5,  # opaque download / direct
    "pss_mb": 150.0,  # 20 runs, summed over the service's processes
}


@dataclass
class Check:
    name: str
    value: str
    target: str
    verdict: str  # PASS, MISS, n/a (...), or "" for context


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def paired(section: Any, a: str, b: str, field: str) -> float | None:
    """The median over rounds of ``a``'s ``field`` over ``b``'s in the same round (or the same
    repeat): a ratio that a round-long change of load cancels out of."""
    sa, sb = _get(section, a, "samples"), _get(section, b, "samples")
    if not sa or not sb:
        return None
    ratios = [x[field] / y[field] for x, y in zip(sa, sb, strict=False) if x[field] and y[field]]
    return statistics.median(ratios) if ratios else None


def _ratio(
    name: str, r: float | None, target: float, *, at_most: bool = False, why: str = NA
) -> Check:
    sign = "<=" if at_most else ">="
    if r is None:
        return Check(name, why, f"{sign} {target}x", why)
    ok = r <= target if at_most else r >= target
    return Check(name, f"{r:.2f}x", f"{sign} {target}x", "PASS" if ok else "MISS")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def checks(res: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    built = res.get("built", {})
    skipped = set(res.get("meta", {}).get("args", {}).get("skip", []))
    st, ka, bulk, mem, sse = (res.get(k) for k in ("startup", "keepalive", "bulk", "memory", "sse"))

    def why(section: str, feature: str | None = None) -> str:
        """What a missing figure means: skipped, not built, or its part failed."""
        if section in skipped:
            return SKIPPED
        if feature is not None and not built.get(feature):
            return NA
        return FAILED

    def ratio(
        name: str,
        r: float | None,
        target: float,
        section: str,
        *,
        at_most: bool = False,
        feature: str | None = None,
    ) -> None:
        out.append(_ratio(name, r, target, at_most=at_most, why=why(section, feature)))

    def limit(name: str, value: Any, target: float, unit: str, section: str, fmt: str) -> None:
        t = f"<= {target:g} {unit}"
        if value is None:
            out.append(Check(name, why(section), t, why(section)))
        else:
            out.append(Check(name, fmt.format(value), t, _verdict(value <= target)))

    # 1-2: start-up and the CLI
    for kind in ("warm", "cold"):
        ratio(
            f"{kind} run / bare docker (median of paired runs)",
            paired(st, kind, "bare", "seconds"),
            TARGETS[kind],
            "startup",
            at_most=True,
        )
    cli = _get(st, "warm", "own_cpu_ms")
    limit(
        "CLI CPU per warm run (its own process)",
        cli,
        TARGETS["cli_cpu_ms"],
        "ms",
        "startup",
        "{:.0f} ms",
    )
    svc = _get(st, "warm", "service_cpu_ms")
    if cli is not None and svc is not None:
        total = cli + (_get(st, "warm", "children_cpu_ms") or 0.0) + svc
        out.append(
            Check(
                "warm run CPU: CLI, its children and the service side",
                f"{total:.0f} ms",
                "context",
                "",
            )
        )
    # 3: keep-alive
    ratio(
        "coatcheck (1 worker) / mitmdump, 1 connection",
        paired(ka, "coatcheck-w1 x1", "mitmdump x1", "rps"),
        TARGETS["tput"],
        "keepalive",
    )
    p50c, p50m = _get(ka, "coatcheck-w1 x1", "p50_ms"), _get(ka, "mitmdump x1", "p50_ms")
    d = None if p50c is None or p50m is None else p50c - p50m
    limit("coatcheck p50 - mitmdump p50", d, TARGETS["p50_ms"], "ms", "keepalive", "{:+.2f} ms")
    ratio(
        "4 runs: default workers / 1 worker",
        paired(ka, "coatcheck x4", "coatcheck-w1 x4", "rps"),
        TARGETS["workers"],
        "keepalive",
        feature="workers",
    )
    cpu = [_get(ka, k, "cpu_ms") for k in ("coatcheck-w1 x1", "mitmdump x1")]
    if None not in cpu:
        out.append(
            Check(
                "proxy CPU per request, mitmdump / coatcheck (capacity)",
                f"{cpu[1] / cpu[0]:.2f}x",
                "context",
                "",
            )
        )
    # 4: SSE through the proxy (whichever service the bench used)
    m = next((k for k in ("coatcheck", "coatcheck-w1") if k in (sse or {})), None)
    if sse and m:
        ok = bool(sse[m]["streamed"])
        out.append(
            Check(
                "SSE streamed, not buffered (first event before the hold)",
                "yes" if ok else "no",
                "yes",
                _verdict(ok),
            )
        )
        d = sse[m]["from_connect_ms"] - sse["direct"]["from_connect_ms"]
        out.append(
            Check(
                "SSE first event: proxy - direct (fresh connection)", f"{d:+.1f} ms", "context", ""
            )
        )
    else:
        out.append(Check("SSE streamed, not buffered", why("sse"), "yes", why("sse")))
    # 5: bulk
    for d in ("download", "upload"):
        ratio(
            f"bulk {d}: coatcheck (scrubbing) / mitmdump",
            paired(bulk, f"coatcheck {d}", f"mitmdump {d}", "mib_s"),
            TARGETS["bulk"],
            "bulk",
        )
        cpu = [_get(bulk, f"{m} {d}", "cpu_s_per_gib") for m in ("coatcheck", "mitmdump")]
        if None not in cpu:
            out.append(
                Check(
                    f"bulk {d}: proxy CPU per GiB, mitmdump / coatcheck (capacity)",
                    f"{cpu[1] / cpu[0]:.2f}x",
                    "context",
                    "",
                )
            )
    ratio(
        "bulk download: opaque / direct",
        paired(bulk, "coatcheck-opaque download", "direct download", "mib_s"),
        TARGETS["opaque"],
        "bulk",
        feature="opaque",
    )
    # 6: memory
    pss = _get(mem, "pss_mb")
    t = f"< {TARGETS['pss_mb']:.0f} MB"
    if pss is None:
        out.append(Check("proxy PSS, 20 concurrent runs", why("memory"), t, why("memory")))
    else:
        out.append(
            Check(
                "proxy PSS, 20 concurrent runs",
                f"{pss:.0f} MB",
                t,
                _verdict(pss < TARGETS["pss_mb"]),
            )
        )
        out.append(
            Check(
                "proxy RSS summed, 20 concurrent runs",
                f"{_get(mem, 'rss_mb'):.0f} MB",
                "context",
                "",
            )
        )
    return out
