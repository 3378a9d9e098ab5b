"""The benchmark's Markdown: tables ready for the README's "Performance" section, then the
ratio table of :mod:`tests.bench.report`'s verdicts. Reads the results dict only (the JSON)."""

from __future__ import annotations

from typing import Any

from tests.bench.report import NA, Check

LABELS = {
    "direct": "direct to the upstream",
    "mitmdump": "plain mitmdump (streams bodies over 1 MiB)",
    "coatcheck": "coatcheck (injects + scrubs)",
    "coatcheck-w1": "coatcheck, 1 worker (injects + scrubs)",
    "coatcheck-opaque": "coatcheck, opaque host (`--allow-opaque`)",
}


def _n(v: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(res: dict[str, Any], cks: list[Check]) -> str:
    meta = res["meta"]
    lines = [
        f"Measured {meta['date']} with `make bench{' --quick' if meta['quick'] else ''}` on "
        f"{meta['machine']} (load average {meta['load_start']:.1f} at the start, "
        f"{meta['load_end']:.1f} at the end; the bench took {meta['seconds']:.0f} s). "
        "Ratios are measured in the same run, interleaved; figures are medians.",
        "",
    ]
    st = res.get("startup")
    if st:
        lines += [
            f"| Start-up of `true` in `{meta['image']}` (median of {st['bare']['n']}) | seconds "
            "| CLI CPU ms | its children ms | service CPU ms |",
            "|---|---:|---:|---:|---:|",
        ]
        label = {
            "bare": "`docker run --rm` (bare)",
            "warm": "`coatcheck run` warm (`coatcheck proxy` running)",
            "cold": "`coatcheck run` cold (starts its own proxy)",
        }
        for k in ("bare", "warm", "cold"):
            s = st[k]
            svc = _n(s["service_cpu_ms"]) if k == "warm" else "-"
            lines.append(
                f"| {label[k]} | {s['seconds']:.2f} | {s['own_cpu_ms']:.0f} | "
                f"{s['children_cpu_ms']:.0f} | {svc} |"
            )
        lines.append("")
    ka = res.get("keepalive")
    if ka:
        lines += [
            "| Keep-alive HTTPS GET /echo | 1 client req/s | p50 ms | p99 ms | proxy CPU ms/req "
            "| 4 clients req/s | proxy CPU ms/req |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        label = {
            "direct": "direct to the upstream",
            "mitmdump": "plain mitmdump",
            "coatcheck-w1": "coatcheck, 1 worker (injects + scrubs)",
            "coatcheck": f"coatcheck, default workers ({meta['cpus']})",
        }
        for m in ("direct", "mitmdump", "coatcheck-w1", "coatcheck"):
            one, four = ka.get(f"{m} x1"), ka.get(f"{m} x4")
            if one is None:
                lines.append(f"| {label[m]} | {NA} | | | | | |")
                continue
            cpu1 = "-" if m == "direct" else _n(one["cpu_ms"], "{:.2f}")
            cpu4 = "-" if m == "direct" else _n(four["cpu_ms"], "{:.2f}")
            lines.append(
                f"| {label[m]} | {_n(one['rps'])} | {_n(one['p50_ms'], '{:.2f}')} | "
                f"{_n(one['p99_ms'], '{:.2f}')} | {cpu1} | {_n(four['rps'])} | {cpu4} |"
            )
        lines.append("")
    sse = res.get("sse")
    if sse:
        lines += [
            "| First server-sent event | from connect ms | from request ms |",
            "|---|---:|---:|",
        ]
        for m, s in sse.items():
            lines.append(
                f"| {LABELS.get(m, m)} | {s['from_connect_ms']:.1f} | {s['from_request_ms']:.1f} |"
            )
        if st and st.get("sse-warm", {}).get("n"):
            for k, what in (("sse-warm", "warm"), ("sse-cold", "cold")):
                lines.append(
                    f"| a {what} run's first request (curl in the sandbox, time to first "
                    f"byte) | {_n(st[k]['first_byte_ms'])} | |"
                )
        lines.append("")
    bulk = res.get("bulk")
    if bulk:
        size = next(iter(bulk.values()))["samples"][0]["size"] >> 20
        lines += [
            f"| Bulk transfer, {size} MiB | download MiB/s | proxy CPU s/GiB | upload MiB/s "
            "| proxy CPU s/GiB |",
            "|---|---:|---:|---:|---:|",
        ]
        modes = dict.fromkeys(v["mode"] for v in bulk.values())
        for m in modes:
            dn, up = bulk[f"{m} download"], bulk[f"{m} upload"]
            cells = [_n(dn["mib_s"], "{:,.0f}"), _n(dn["cpu_s_per_gib"], "{:.2f}"),
                     _n(up["mib_s"], "{:,.0f}"), _n(up["cpu_s_per_gib"], "{:.2f}")]  # fmt: skip
            lines.append(f"| {LABELS.get(m, m)} | {' | '.join(cells)} |")
        if not res.get("built", {}).get("opaque"):
            lines.append(f"| coatcheck, opaque host | {NA} | | | |")
        lines.append("")
    mem = res.get("memory")
    if mem:
        zy = (
            f"; a zygote beside it: {mem['zygote_pss_mb']:.0f} MB PSS"
            if mem.get("zygote_pss_mb")
            else ""
        )
        lines += [
            f"| Proxy memory, {mem['runs']} concurrent runs ({mem['processes']} processes{zy}) "
            "| MB |",
            "|---|---:|",
            f"| PSS, summed | {mem['pss_mb']:.0f} |",
            f"| RSS, summed (shared pages counted per process) | {mem['rss_mb']:.0f} |",
            "",
        ]
    lines += ["| Ratio | measured | target | |", "|---|---:|---:|---|"]
    lines += [f"| {c.name} | {c.value} | {c.target} | {c.verdict} |" for c in cks]
    return "\n".join(lines) + "\n"
