"""The auditor's report on one dataset: a self-contained HTML file and the same data as JSON.

Everything comes over gRPC with the caller's identity (an auditor sees every tenant): the
dataset (counts and scrub report, never text), its budget, every ledger entry, its jobs and
models (cards and ε-against-steps curves) and its audit-log entries, with the result of verifying
the whole hash chain. Plots are inline SVG drawn here, so the report needs no plotting library
and no network to open.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from privsynth.client.audit import verify_chain
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError

__all__ = ["collect", "render_html"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _spend_series(ledger: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running plain-sum spend, outstanding reservations and cap after each ledger instant.

    Entries written in one transaction share their time (a commit and the release of its
    reservation): they are one instant and give one point, so a charge never shows up counted
    twice, once as spent and once as still reserved.
    """
    spent = reserved = 0.0
    cap: float | None = None
    out: list[dict[str, Any]] = []
    for e in ledger:
        eps = float(e.get("epsilon", 0.0))
        kind = e.get("kind", "")
        if kind == "reserve":
            reserved += eps
        elif kind == "release":
            reserved = max(0.0, reserved - eps)
        elif kind == "commit":
            spent += eps
        elif kind == "cap":
            cap = eps
        point = {
            "time": e.get("create_time", ""),
            "kind": kind,
            "job": e.get("job", ""),
            "epsilon_spent_sum": spent,
            "epsilon_reserved_sum": reserved,
            "epsilon_cap": cap,
        }
        if out and point["time"] and out[-1]["time"] == point["time"]:
            point["kind"] = f"{out[-1]['kind']}+{kind}"
            out[-1] = point
        else:
            out.append(point)
    return out


_BUDGET_CHANGES = frozenset({"budget.reserved", "budget.committed", "budget.cap_changed"})


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _composed_series(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The composed spend and spend-plus-reserved after each budget change, as the ledger saw it.

    The server writes them into the audit entry of every reservation, commit (with the release
    of its reservation: one entry, one instant) and cap change, computed in the transaction that
    made the change. They are the figures the cap is enforced on, so plotted against the cap
    they cross it only if the ledger let them; recomputing from ledger entries could not do
    that (plain sums over-count, and the client has no accountant). Entries written before the
    totals were recorded are left out.

    Args:
        entries: Audit entries of one dataset, in chain order (``AuditEntry.to_json`` form).

    Returns:
        One point per budget change: time, action, job, ``epsilon_spent``, ``epsilon_total``
        (spent + reserved) and ``epsilon_cap``.
    """
    out = []
    for e in entries:
        if e.get("action") not in _BUDGET_CHANGES:
            continue
        try:
            details = json.loads(e.get("details") or "{}")
        except ValueError:
            continue
        if not isinstance(details, dict):
            continue
        spent = _number(details.get("epsilon_spent_after"))
        total = _number(details.get("epsilon_composed_after"))
        if spent is None or total is None:
            continue
        out.append(
            {
                "time": e.get("time", ""),
                "action": e.get("action", ""),
                "job": e.get("job", ""),
                "epsilon_spent": spent,
                "epsilon_total": total,
                "epsilon_cap": _number(details.get("epsilon_cap")),
            }
        )
    return out


def collect(client: PrivsynthClient, dataset: str) -> dict[str, Any]:
    """Gather the report's data for ``dataset`` ("datasets/<id>") over gRPC."""
    ds = client.get_dataset(dataset)
    budget = client.get_budget(dataset)
    ledger = [_dict(e) for e in client.list_ledger_entries(dataset, page_size=500)]
    jobs = {j.name: j for j in client.list_training_jobs(dataset=dataset, page_size=500)}
    models = []
    for m in client.list_models(dataset=dataset, page_size=500):
        full = client.get_model(m.name)
        job = jobs.get(full.job)
        models.append(
            {
                "name": full.name,
                "job": full.job,
                "state": _dict(full).get("state", ""),
                "create_time": _dict(full).get("create_time", ""),
                "card": _dict(full.card),
                "epsilon_curve": [
                    {"step": int(p.step), "epsilon": p.epsilon} for p in full.epsilon_curve
                ],
                "epsilon_curve_accountant": full.epsilon_curve_accountant,
                "run": _dict(job) if job is not None else {},
            }
        )
    models.sort(key=lambda m: m["create_time"])
    audit: dict[str, Any]
    try:
        chain = list(client.export_audit_log())
    except PrivsynthClientError as exc:
        audit = {"readable": False, "reason": f"{exc.code.name}: {exc.message}", "entries": []}
    else:
        result = verify_chain(chain)
        audit = {
            "readable": True,
            "chain_intact": result.ok,
            "chain_entries": result.entries,
            "chain_head": result.head,
            "problems": list(result.problems),
            "entries": [e.to_json() for e in chain if e.dataset == dataset],
        }
    dataset_dict = _dict(ds)
    dataset_dict.pop("display_name", None)  # free text chosen by the uploader: not needed here
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": dataset_dict,
        "budget": _dict(budget),
        "ledger": ledger,
        "spend_over_time": _spend_series(ledger),
        "composed_over_time": _composed_series(audit["entries"]),
        "models": models,
        "audit_log": audit,
    }


# -- SVG ------------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def svg_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    x_format: Callable[[float], str] = _fmt,
    step: bool = False,
    width: int = 720,
    height: int = 320,
) -> str:
    """A line chart as an SVG element (``step`` draws staircase lines, e.g. ledger totals)."""
    left, right, top, bottom = 64, 200, 16, 48
    pts = [p for _, s in series for p in s]
    if not pts:
        return '<p class="empty">no data</p>'
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y1 = max(max(p[1] for p in pts) * 1.05, 1e-9)
    if x1 <= x0:
        x1 = x0 + 1.0
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - y / y1 * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(y_label)}">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    for t in _ticks(0.0, y1):
        if t > y1:
            continue
        y = sy(t)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_fmt(t)}</text>"
        )
    xs = sorted({x0, x1, *(_ticks(x0, x1, 4) if x_format is _fmt else [])})
    for t in xs:
        if x0 <= t <= x1:
            out.append(
                f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle" '
                f'font-size="11">{html.escape(x_format(t))}</text>'
            )
    out.append(
        f'<text x="{left + pw / 2:.1f}" y="{height - 8}" text-anchor="middle" '
        f'font-size="12">{html.escape(x_label)}</text>'
        f'<text x="14" y="{top + ph / 2:.1f}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {top + ph / 2:.1f})">{html.escape(y_label)}</text>'
    )
    for i, (label, s) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        coords: list[tuple[float, float]] = []
        for j, (x, y) in enumerate(s):
            if step and j:
                coords.append((sx(x), sy(s[j - 1][1])))
            coords.append((sx(x), sy(y)))
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        for x, y in s if len(s) <= 40 else ():
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>')
        ly = top + 14 + 18 * i
        out.append(
            f'<line x1="{left + pw + 12}" y1="{ly - 4}" x2="{left + pw + 32}" y2="{ly - 4}" '
            f'stroke="{color}" stroke-width="2"/>'
            f'<text x="{left + pw + 38}" y="{ly}" font-size="11">{html.escape(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# -- HTML -----------------------------------------------------------------------------------


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else 0.0


def _time_label(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#2ca02c}.bad{color:#d62728;font-weight:bold}.empty{color:#888}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}
"""


def _spend_plot(data: dict[str, Any]) -> tuple[str, str]:
    """The budget-over-time chart and its caption.

    The composed totals recorded in the audit log are plotted against the cap. Without them
    (an audit log this caller cannot read, or one from before they were recorded) the ledger's
    plain sums are plotted without a cap line: they over-state the composed spend, and drawn
    against the cap they would show crossings that never happened.
    """
    budget_cap = float(data["budget"].get("epsilon_cap", 0))
    composed = data.get("composed_over_time") or []
    if composed:
        chart = svg_chart(
            [
                ("spent (composed)", [(_time(p["time"]), p["epsilon_spent"]) for p in composed]),
                (
                    "spent + reserved (composed)",
                    [(_time(p["time"]), p["epsilon_total"]) for p in composed],
                ),
                ("cap", [(_time(p["time"]), p["epsilon_cap"] or budget_cap) for p in composed]),
            ],
            x_label="time (UTC)",
            y_label="epsilon",
            x_format=_time_label,
            step=True,
        )
        return chart, (
            "The composed spend, and spend plus reservations, as the ledger computed them at "
            "each reservation, charge and cap change (recorded in the audit log), against the "
            "cap they are enforced on. A charge and the release of its reservation are one "
            "instant."
        )
    series = data["spend_over_time"]
    chart = svg_chart(
        [
            ("spent (plain sum)", [(_time(p["time"]), p["epsilon_spent_sum"]) for p in series]),
            (
                "spent + reserved (plain sum)",
                [
                    (_time(p["time"]), p["epsilon_spent_sum"] + p["epsilon_reserved_sum"])
                    for p in series
                ],
            ),
        ],
        x_label="time (UTC)",
        y_label="epsilon",
        x_format=_time_label,
        step=True,
    )
    return chart, (
        "The audit log holds no composed totals for this dataset (or is not readable here), so "
        "these are running plain sums of the ledger. They over-state the composed spend the cap "
        "is enforced on, so no cap line is drawn against them."
    )


def render_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS, SVG and the JSON data)."""
    ds, budget = data["dataset"], data["budget"]
    name = str(ds.get("name", ""))
    spend_plot, spend_note = _spend_plot(data)
    curves = [
        (m["name"], [(float(p["step"]), float(p["epsilon"])) for p in m["epsilon_curve"]])
        for m in data["models"]
        if m["epsilon_curve"]
    ]
    curve_plot = svg_chart(curves, x_label="training steps", y_label="epsilon")
    runs = []
    for m in data["models"]:
        card, run = m["card"], m["run"]
        runs.append(
            {
                "model": m["name"],
                "job": m["job"],
                "state": run.get("state", m["state"]),
                "created": m["create_time"],
                "preset": card.get("preset", run.get("preset", "")),
                "target_epsilon": run.get("target_epsilon", card.get("target_epsilon", "")),
                "epsilon": card.get("epsilon", ""),
                "delta": card.get("delta", run.get("delta", "")),
                "accountant": card.get("accountant", ""),
                "noise_multiplier": card.get("noise_multiplier", ""),
                "sample_rate": card.get("sample_rate", ""),
                "max_grad_norm": card.get("max_grad_norm", ""),
                "steps": card.get("steps", run.get("progress", {}).get("step", "")),
                "epochs": card.get("epochs", run.get("epochs", "")),
                "expected_batch_size": card.get("expected_batch_size", ""),
                "privacy_unit": card.get("privacy_unit", ""),
                "grad_sample_mode": card.get("grad_sample_mode", ""),
                "secure_rng": card.get("secure_rng", ""),
            }
        )
    audit = data["audit_log"]
    if not audit.get("readable"):
        verdict = f'<p class="bad">audit log not readable: {html.escape(audit["reason"])}</p>'
    elif audit["chain_intact"]:
        verdict = (
            f'<p class="ok">hash chain intact: {audit["chain_entries"]} entries, head '
            f"<code>{html.escape(audit['chain_head'])}</code></p>"
        )
    else:
        problems = "".join(f"<li>{html.escape(p)}</li>" for p in audit["problems"])
        verdict = f'<p class="bad">hash chain BROKEN</p><ul>{problems}</ul>'
    facts = {
        "records": ds.get("record_count", 0),
        "privacy unit": ds.get("privacy_unit", ""),
        "content SHA-256": ds.get("content_sha256", ""),
        "epsilon cap / delta cap": f"{budget.get('epsilon_cap', 0)} / {budget.get('delta', 0)}",
        "epsilon spent (composed)": budget.get("epsilon_spent", 0.0),
        "epsilon spent (plain sum)": budget.get("epsilon_spent_sum", 0.0),
        "epsilon reserved": budget.get("epsilon_reserved", 0.0),
        "epsilon remaining": budget.get("epsilon_remaining", 0.0),
        "delta used": budget.get("delta_used", 0.0),
        "composition": budget.get("composition", ""),
        "scrub report": ds.get("scrub_report", {}),
    }
    dl = "".join(
        f"<dt>{html.escape(k)}</dt><dd>{html.escape(_cell(v))}</dd>" for k, v in facts.items()
    )
    payload = json.dumps(data, sort_keys=True).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>privsynth audit report: {html.escape(name)}</title><style>{_CSS}</style></head>
<body>
<h1>Privacy audit report: {html.escape(name)}</h1>
<p>Generated {html.escape(data["generated_at"])} from the privsynth server over gRPC.
It holds counts, parameters and hashes only, never corpus or synthetic text.</p>
<h2>Budget</h2><dl>{dl}</dl>
<h2>Budget spent over time</h2>
<p>{spend_note}</p>
{spend_plot}
<h2>Epsilon against training steps</h2>
<p>Each model's DP-SGD event (noise multiplier, sample rate) under the PLD accountant, at the
model's delta.</p>
{curve_plot}
<h2>Runs and their parameters</h2>
{_table(runs, list(runs[0]) if runs else [])}
<h2>Ledger</h2>
{
        _table(
            data["ledger"],
            [
                "id",
                "create_time",
                "kind",
                "job",
                "epsilon",
                "delta",
                "noise_multiplier",
                "sample_rate",
                "steps",
                "actor",
                "note",
            ],
        )
    }
<h2>Audit log entries for this dataset</h2>
{verdict}
{_table(audit["entries"], ["seq", "time", "actor", "action", "job", "details", "hash"])}
<script type="application/json" id="report-data">{payload}</script>
</body></html>
"""
