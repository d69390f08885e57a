"""The load-test report: a terminal table, a JSON summary and a self-contained HTML page with charts."""

from __future__ import annotations

import html
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from smsfold.loadtest.measure import Projected, Verdict, percentile
from smsfold.loadtest.runner import SendResult

__all__ = ["build_summary", "print_summary", "write_html", "write_json"]

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
_MAX_POINTS = 300


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else 0.0,
    }


def build_summary(
    options: dict[str, Any],
    results: Sequence[SendResult],
    projected: dict[str, Projected],
    verdict: Verdict | None,
    *,
    started_at: float,
    ended_at: float,
    interrupted: bool,
) -> dict[str, Any]:
    """Everything the report shows, as plain data (this is the JSON summary)."""
    acked = [r for r in results if r.acknowledged]
    statuses: dict[str, int] = defaultdict(int)
    for r in results:
        statuses[str(r.status) if r.status else r.error or "error"] += 1
    send_span = (max(r.sent_at for r in results) - min(r.sent_at for r in results)) if results else 0.0
    latency_by_type: dict[str, list[float]] = defaultdict(list)
    for r in acked:
        p = projected.get(r.message.message_id)
        if p is not None:
            latency_by_type[r.message.message_type].append(float(p.latency_ms))
    all_latency = [v for values in latency_by_type.values() for v in values]
    return {
        "started_at": started_at,
        "ended_at": ended_at,
        "interrupted": interrupted,
        "options": options,
        "sent": len(results),
        "acknowledged": len(acked),
        "responses": dict(sorted(statuses.items())),
        "throughput_per_s": len(acked) / send_span if send_span > 0 else float(len(acked)),
        "ack_latency_ms": _stats([r.ack_ms for r in acked]),
        "e2e_latency_ms": {
            "all": _stats(all_latency),
            **{t: _stats(v) for t, v in sorted(latency_by_type.items())},
        },
        "verifier": None
        if verdict is None
        else {
            "passed": verdict.passed,
            "per_type": verdict.per_type,
            "missing": verdict.missing[:100],
            "missing_count": len(verdict.missing),
            "doubled": verdict.doubled[:100],
            "doubled_count": len(verdict.doubled),
            "misclassified": [list(m) for m in verdict.misclassified[:100]],
            "misclassified_count": len(verdict.misclassified),
        },
        "series": _series(acked, projected),
    }


def _series(acked: Sequence[SendResult], projected: dict[str, Projected]) -> dict[str, Any]:
    """Throughput and per-type p99 latency over time, in buckets sized to keep charts readable."""
    if not acked:
        return {"bucket_s": 1, "t": [], "throughput": [], "p99_by_type": {}}
    t0 = min(r.sent_at for r in acked)
    span = max(r.sent_at for r in acked) - t0
    # At most _MAX_POINTS buckets, and none shorter than a quarter second.
    bucket = max(0.25, span / _MAX_POINTS)
    n = int(span // bucket) + 1
    counts = [0] * n
    lat: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(n)])
    for r in acked:
        i = int((r.sent_at - t0) // bucket)
        counts[i] += 1
        p = projected.get(r.message.message_id)
        if p is not None:
            lat[r.message.message_type][i].append(float(p.latency_ms))
    return {
        "bucket_s": bucket,
        "t": [round(i * bucket, 3) for i in range(n)],
        "throughput": [c / bucket for c in counts],
        "p99_by_type": {
            t: [percentile(b, 99) if b else None for b in buckets] for t, buckets in sorted(lat.items())
        },
    }


def print_summary(summary: dict[str, Any], console: Console) -> None:
    head = Table(title="Load test")
    for col in ("sent", "acknowledged", "responses", "throughput/s", "ack p50 ms", "ack p99 ms"):
        head.add_column(col)
    ack = summary["ack_latency_ms"]
    head.add_row(
        str(summary["sent"]),
        str(summary["acknowledged"]),
        ", ".join(f"{k}: {v}" for k, v in summary["responses"].items()),
        f"{summary['throughput_per_s']:.1f}",
        f"{ack['p50']:.1f}",
        f"{ack['p99']:.1f}",
    )
    console.print(head)
    if gw := summary.get("gateway"):
        console.print(
            f"gateway's own view: {gw['kafka_acks']} Kafka acks, mean {gw['kafka_ack_mean_ms']:.1f} ms, "
            f"p50 ≤ {gw['kafka_ack_p50_ms_at_most']:g} ms, p99 ≤ {gw['kafka_ack_p99_ms_at_most']:g} ms; "
            f"durable by {gw['durable_by']}"
        )
    table = Table(title="End-to-end latency by message type (gateway receipt → projected), ms")
    for col in ("type", "count", "p50", "p95", "p99", "max", "verified"):
        table.add_column(col, justify="right" if col != "type" else "left")
    verifier = summary["verifier"] or {"per_type": {}}
    for name, s in summary["e2e_latency_ms"].items():
        counts = verifier["per_type"].get(name)
        check = (
            ""
            if counts is None
            else (
                f"{counts['projected']}/{counts['acknowledged']}"
                + (f" ({counts['doubled']} doubled)" if counts["doubled"] else "")
            )
        )
        table.add_row(
            name,
            str(s["count"]),
            f"{s['p50']:.0f}",
            f"{s['p95']:.0f}",
            f"{s['p99']:.0f}",
            f"{s['max']:.0f}",
            check,
        )
    console.print(table)
    if summary["verifier"] is not None:
        v = summary["verifier"]
        if v["passed"]:
            console.print("[green bold]verifier: every acknowledged message projected exactly once[/]")
        else:
            console.print(f"[red bold]verifier {_failure(v)}[/]")
            for label in ("missing", "doubled", "misclassified"):
                if v[label]:
                    console.print(f"  {label}: {v[label][:10]}")
    if summary["interrupted"]:
        console.print("[yellow]interrupted: this is a partial report[/]")


def _gateway_line(gw: dict[str, Any] | None) -> str:
    if not gw:
        return "gateway metrics: not available"
    return (f"gateway's own view: {gw['kafka_acks']} Kafka acks, "
            f"p99 ≤ {gw['kafka_ack_p99_ms_at_most']:g} ms; durable by {gw['durable_by']}")


def _failure(v: dict[str, Any]) -> str:
    return (
        f"FAILED: {v['missing_count']} missing, {v['doubled_count']} doubled, "
        f"{v['misclassified_count']} misclassified"
    )


def write_json(summary: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path


def _line_chart(title: str, x: Sequence[float], lines: dict[str, Sequence[float | None]], unit: str) -> str:
    width, height, left, bottom, top, right = 760, 260, 60, 30, 30, 150
    values = [v for ys in lines.values() for v in ys if v is not None]
    y_max = max(values) * 1.1 if values and max(values) > 0 else 1.0
    x_max = max(x) if x and max(x) > 0 else 1.0

    def px(xv: float) -> float:
        return left + (width - left - right) * xv / x_max

    def py(yv: float) -> float:
        return top + (height - top - bottom) * (1 - yv / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="{left}" y="18" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{py(0)}" x2="{width - right}" y2="{py(0)}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{py(0)}" stroke="#999"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        yv = y_max / 1.1 * frac
        parts.append(
            f'<text x="{left - 5}" y="{py(yv) + 4}" text-anchor="end" font-size="11">{yv:.0f}</text>'
        )
    parts.append(
        f'<text x="{width - right}" y="{height - 8}" text-anchor="end" font-size="11">{x_max:.0f} s</text>'
    )
    parts.append(f'<text x="{left + 4}" y="{top - 4}" font-size="11">{html.escape(unit)}</text>')
    for i, (name, ys) in enumerate(lines.items()):
        color = _COLORS[i % len(_COLORS)]
        points = " ".join(
            f"{px(xv):.1f},{py(yv):.1f}" for xv, yv in zip(x, ys, strict=False) if yv is not None
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>')
        # Markers, so a run of a single bucket still shows its point.
        parts.extend(
            f'<circle cx="{px(xv):.1f}" cy="{py(yv):.1f}" r="2.5" fill="{color}"/>'
            for xv, yv in zip(x, ys, strict=False)
            if yv is not None
        )
        parts.append(
            f'<text x="{width - right + 10}" y="{top + 14 * i + 10}" font-size="12" '
            f'fill="{color}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def write_html(summary: dict[str, Any], path: Path) -> Path:
    """A self-contained page (inline SVG, no scripts) like the seed's Grafana panels."""
    series = summary["series"]
    latency = _line_chart(
        "Processing latency by message type (p99 per bucket)", series["t"], series["p99_by_type"], "ms"
    )
    throughput = _line_chart(
        "Throughput (acknowledged messages/s)", series["t"], {"acknowledged/s": series["throughput"]}, "msg/s"
    )
    rows = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{s['count']}</td><td>{s['p50']:.0f}</td><td>{s['p95']:.0f}</td>"
        f"<td>{s['p99']:.0f}</td><td>{s['max']:.0f}</td></tr>"
        for t, s in summary["e2e_latency_ms"].items()
    )
    v = summary["verifier"]
    verdict = (
        "not run"
        if v is None
        else ("passed: every acknowledged message projected exactly once" if v["passed"] else _failure(v))
    )
    partial = " (interrupted: partial report)" if summary["interrupted"] else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>smsfold load test</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body>
<h1>smsfold load test</h1>
<p id="totals">sent {summary["sent"]}, acknowledged {summary["acknowledged"]},
throughput {summary["throughput_per_s"]:.1f} msg/s, gateway ack p99 {summary["ack_latency_ms"]["p99"]:.1f} ms,
responses {html.escape(json.dumps(summary["responses"]))}{partial}</p>
<p id="gateway">{html.escape(_gateway_line(summary.get("gateway")))}</p>
<p id="verdict">verifier: {html.escape(verdict)}</p>
<h2>End-to-end latency by message type (ms)</h2>
<table><tr><th>type</th><th>count</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>{rows}</table>
<div id="latency-chart">{latency}</div>
<div id="throughput-chart">{throughput}</div>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
