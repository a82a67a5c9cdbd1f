"""Tables for the terminal and the JSON results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.loadgen import Point

BASELINE = "upstream"
ORDER = {BASELINE: 0, "floor": 1, "router": 2, "litellm": 3}


def _mode(stream: bool) -> str:
    return "stream" if stream else "json"


def comparisons(points: list[Point]) -> list[dict[str, Any]]:
    """Per (mode, concurrency): each proxy's added p50/p99 over the upstream, and the
    router's throughput against the floor (percent) and against LiteLLM (ratio)."""
    by_key = {(p.target, p.stream, p.connections): p for p in points}
    out: list[dict[str, Any]] = []
    for stream, conns in sorted({(p.stream, p.connections) for p in points}):
        row: dict[str, Any] = {"mode": _mode(stream), "connections": conns}
        base = by_key.get((BASELINE, stream, conns))
        for name in ("floor", "router", "litellm"):
            p = by_key.get((name, stream, conns))
            if p is None or base is None:
                continue
            row[f"{name}_added_p50_ms"] = round(p.p50_ms - base.p50_ms, 3)
            row[f"{name}_added_p99_ms"] = round(p.p99_ms - base.p99_ms, 3)
        r, lt = by_key.get(("router", stream, conns)), by_key.get(("litellm", stream, conns))
        fl = by_key.get(("floor", stream, conns))
        if r is not None and fl is not None and fl.rps > 0:
            row["rps_pct_router_of_floor"] = round(100 * r.rps / fl.rps, 1)
        if r is not None and lt is not None and lt.rps > 0:
            row["rps_ratio_router_over_litellm"] = round(r.rps / lt.rps, 2)
        out.append(row)
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(points: list[Point]) -> str:
    by_key = {(p.target, p.stream, p.connections): p for p in points}
    head = (
        f"{'mode':<6} {'target':<9} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'errors':>6} {'+p50 ms':>8} {'+p99 ms':>8} {'cpu ms/req':>10}"
    )
    lines = [head, "-" * len(head)]
    if not points:
        lines.append("(no points measured)")
    for p in sorted(points, key=lambda p: (p.stream, p.connections, ORDER.get(p.target, 9))):
        base = by_key.get((BASELINE, p.stream, p.connections))
        add50 = add99 = None
        if base is not None and p.target != BASELINE:
            add50, add99 = p.p50_ms - base.p50_ms, p.p99_ms - base.p99_ms
        lines.append(
            f"{_mode(p.stream):<6} {p.target:<9} {p.connections:>4} {p.rps:>9.1f} "
            f"{p.p50_ms:>8.2f} {p.p90_ms:>8.2f} {p.p99_ms:>8.2f} {p.error_count:>6} "
            f"{_fmt(add50):>8} {_fmt(add99):>8} {_fmt(p.server_cpu_ms_per_req, 3):>10}"
        )
    ratios = ratio_table(comparisons(points))
    if ratios:
        lines += ["", ratios]
    return "\n".join(lines)


def ratio_table(comps: list[dict[str, Any]]) -> str:
    """The router's req/s as % of the floor's and as a multiple of LiteLLM's ("" if neither)."""
    keys = ("rps_pct_router_of_floor", "rps_ratio_router_over_litellm")
    rows = [c for c in comps if any(k in c for k in keys)]
    if not rows:
        return ""
    head = f"{'mode':<6} {'conc':>4} {'router/floor':>13} {'router/litellm':>15}"
    lines = ["router throughput", head, "-" * len(head)]
    for c in rows:
        pct, ratio = c.get(keys[0]), c.get(keys[1])
        lines.append(
            f"{c['mode']:<6} {c['connections']:>4} "
            f"{'-' if pct is None else f'{pct:.1f}%':>13} "
            f"{'-' if ratio is None else f'{ratio:.2f}x':>15}"
        )
    return "\n".join(lines)


def proxy_table(proxies: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'proxy':<9} {'mode':<6} {'startup s':>9} {'RSS MiB':>8} {'tree RSS MiB':>12}"]
    for name, modes in proxies.items():
        for mode, info in modes.items():
            rss = info.get("rss_after_load") or {}
            main, tree = rss.get("main_kb"), rss.get("tree_kb")
            lines.append(
                f"{name:<9} {mode:<6} {_fmt(info.get('startup_s')):>9} "
                f"{_fmt(main / 1024 if main else None, 1):>8} "
                f"{_fmt(tree / 1024 if tree else None, 1):>12}"
            )
    return "\n".join(lines)


def write_results(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path
