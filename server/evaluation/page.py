"""The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

A dataset owner opens the file from disk or an e-mail; an auditor gets the same page rendered
from :func:`~privsynth.server.evaluation.report.auditor_view`. The page holds what the JSON
report holds and nothing more (numbers, our reference names, label names in the owner's view),
so it can never show a record. Every value from the report is escaped.

Plots (each an ``<svg class="plot">`` with a stable id): ``plot-utility``, ``plot-lengths``,
``plot-labels`` (owner's view), ``plot-mauve``, ``plot-diversity``, ``plot-roc`` (when the
membership attack ran), ``plot-bias`` and ``plot-canary`` (when the canary audit ran).
:func:`plot_ids` says which a report gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from privsynth.server.evaluation.svg import bar_chart, line_chart

__all__ = ["plot_ids", "render"]

CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;
background:#f9fafb}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;margin:32px 0 8px;border-bottom:1px solid #e5e7eb}
p,li{max-width:80ch;overflow-wrap:anywhere}
.meta{color:#4b5563}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:16px 0}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px}
.card b{display:block;font-size:24px}.card span{color:#4b5563;font-size:13px}
.verdict{background:#eff6ff;border-left:4px solid #2563eb;padding:10px 14px;max-width:none}
.warn{background:#fffbeb;border-left:4px solid #d97706;padding:10px 14px;max-width:none}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px;min-width:0}
figcaption{font-size:13px;color:#4b5563;margin-top:6px}
svg.plot{display:block;width:100%;height:auto;max-width:100%}
svg text{font:12px system-ui,sans-serif;fill:#374151}
svg .legend{font-size:12px}svg .value{font-size:11px}
svg .rule{stroke:#9ca3af}svg .frame{fill:none;stroke:#d1d5db}
svg .chance{stroke:#9ca3af;stroke-dasharray:4 4;fill:none}
.table{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;background:#fff;margin:8px 0;width:100%}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:right;overflow-wrap:break-word}
th:first-child,td:first-child{text-align:left}
th{background:#f3f4f6}
.private{color:#b45309;font-weight:600}.covered{color:#047857;font-weight:600}
"""


def _f(value: Any, digits: int = 3) -> str:
    """A number for a table cell (— for missing)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return escape(str(value))


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="table">{table}</div>'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _beside(svg: str, caption: str, side: str) -> str:
    """A figure and a table (or text) side by side, stacking on narrow screens."""
    return f'<div class="grid">{_figure(svg, caption)}<div>{side}</div></div>'


def plot_ids(report: Mapping[str, Any]) -> list[str]:
    """The plots :func:`render` draws for ``report`` (in page order)."""
    ids = []
    if "rows" in report.get("utility", {}):
        ids.append("plot-utility")
    ids += ["plot-lengths"]
    if report.get("fidelity", {}).get("label_mix", {}).get("training"):
        ids.append("plot-labels")
    ids += ["plot-mauve", "plot-diversity"]
    if "roc" in report.get("leakage", {}).get("membership_inference", {}):
        ids.append("plot-roc")
    ids.append("plot-bias")
    if report.get("canary_audit", {}).get("status") == "ran":
        ids.append("plot-canary")
    return ids


def _summary(report: Mapping[str, Any]) -> str:
    util = report.get("utility", {})
    syn = next((r for r in util.get("rows", []) if r.get("kind") == "synthetic"), None)
    fid = report["fidelity"]["rows"][0]
    leak = report["leakage"]
    mia = leak["membership_inference"]
    cards = [
        (_f(syn["retained"], 2) if syn else "—", "utility retained (1 = real data)"),
        (_f(syn["accuracy"]) if syn else "—", "accuracy trained on synthetic"),
        (_f(fid["mauve"]), "MAUVE vs training (1 = same)"),
        (_f(mia.get("auc")), "membership-inference AUC (0.5 = chance)"),
        (_pct(leak["ngram_overlap"]["with_training"]), "samples sharing an 8-gram with training"),
        (_pct(leak["residual_pii"].get("rate")), "samples with residual PII"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><b>{v}</b><span>{escape(label)}</span></div>' for v, label in cards
        )
        + "</div>"
    )


def _utility(report: Mapping[str, Any]) -> str:
    util = report.get("utility", {})
    if "rows" not in util:
        return f'<h2>Utility</h2><p class="warn">Skipped: {escape(util.get("skipped", ""))}</p>'
    rows = util["rows"]
    chart = bar_chart(
        "plot-utility",
        "Holdout accuracy by training set",
        [r["name"] for r in rows],
        [("accuracy on the holdout", [float(r["accuracy"]) for r in rows])],
        max_value=1.0,
    )
    table = _table(
        ["training set", "records", "accuracy", "macro-F1", "utility retained"],
        [
            [
                escape(r["name"]),
                _f(r["records"]),
                _f(r["accuracy"]),
                _f(r["macro_f1"]),
                _f(r["retained"], 2),
            ]
            for r in rows
        ],
    )
    return (
        "<h2>Utility: train on synthetic, test on real</h2>"
        f'<p class="verdict">{escape(util["verdict"])}</p>'
        f"<p>{escape(util['task'])}; {util['holdout_records']:,} holdout records, "
        f"{util['labels']} labels. The DP bag-of-words references use the "
        f"{escape(util['dp_bag_of_words_vocabulary'])}"
        + (
            f"; the centroid one embeds records and words with "
            f"{escape(util['dp_centroid_embedding'])}"
            if util.get("dp_centroid_embedding")
            else ""
        )
        + ".</p>"
        + _beside(
            chart,
            "Accuracy on the real holdout; retained = (acc − majority) / (real − majority).",
            table,
        )
    )


def _fidelity(report: Mapping[str, Any]) -> str:
    fid = report["fidelity"]
    lengths = fid["lengths"]
    edges = lengths["edges"]
    bins = [f"{edges[i]}–{edges[i + 1] - 1} words" for i in range(len(edges) - 2)]
    bins.append(f"{edges[-2]}+ words")
    corpora = lengths["corpora"]
    order = ["synthetic records", "training records", "holdout records"]
    length_chart = bar_chart(
        "plot-lengths",
        "Record lengths",
        bins,
        [(name, corpora[name]["histogram"]) for name in order if name in corpora],
        percent=True,
    )
    curves = line_chart(
        "plot-mauve",
        "MAUVE divergence curves",
        [(r["name"], [(p[0], p[1]) for p in r["divergence_curve"]]) for r in fid["rows"]],
        x_label="exp(−5·KL(other ‖ mixture))",
        y_label="exp(−5·KL(training ‖ mixture))",
    )
    figures = [
        _figure(length_chart, "Share of records by length, in words."),
        _figure(curves, "MAUVE is the area under each curve; the holdout's is the real floor."),
    ]
    mix = fid["label_mix"]
    if mix.get("training"):
        labels = sorted(
            set(mix["training"]) | set(mix["synthetic"]), key=lambda k: -mix["training"].get(k, 0)
        )
        figures.insert(
            1,
            _figure(
                bar_chart(
                    "plot-labels",
                    "Label mix",
                    labels,
                    [
                        ("synthetic records", [mix["synthetic"].get(k, 0.0) for k in labels]),
                        ("training records", [mix["training"].get(k, 0.0) for k in labels]),
                    ],
                    percent=True,
                ),
                f"Share of records per label; total variation {mix['total_variation']:.3f} "
                f"(holdout: {mix['holdout_total_variation']:.3f}).",
            ),
        )
    table = _table(
        [
            "compared with training",
            "records",
            "unigram JS",
            "bigram JS",
            "length KS",
            "MAUVE",
            "Fréchet",
        ],
        [
            [
                escape(r["name"]),
                _f(r["records"]),
                _f(r["unigram_js"]),
                _f(r["bigram_js"]),
                _f(r["length_ks"]),
                _f(r["mauve"]),
                _f(r["frechet"]),
            ]
            for r in fid["rows"]
        ],
    )
    summary = (
        f"<p>{fid['compared_records']:,} records per corpus; embeddings: "
        f"{escape(fid['embedding'])}. JS divergences in bits (0 same, 1 disjoint); the holdout "
        "row is what two real samples of this data differ by.</p>"
    )
    if not mix.get("training"):
        summary += (
            f"<p>Label mix: total variation {_f(mix.get('total_variation'))} over "
            f"{_f(mix.get('labels'))} labels (names withheld).</p>"
        )
    return "<h2>Fidelity</h2>" + summary + table + f'<div class="grid">{"".join(figures)}</div>'


def _diversity(report: Mapping[str, Any]) -> str:
    div = report["diversity"]
    keys = [
        ("distinct_1", "distinct-1"),
        ("distinct_2", "distinct-2"),
        ("self_bleu", "self-BLEU"),
        ("exact_duplicate_rate", "exact duplicates"),
        ("near_duplicate_rate", "near duplicates"),
    ]
    chart = bar_chart(
        "plot-diversity",
        "Diversity",
        [label for _, label in keys],
        [
            ("synthetic records", [float(div["synthetic"][k]) for k, _ in keys]),
            ("training records", [float(div["training_reference"][k]) for k, _ in keys]),
        ],
        max_value=1.0,
    )
    table = _table(
        ["measure", "synthetic", "training (reference)"],
        [[label, _f(div["synthetic"][k]), _f(div["training_reference"][k])] for k, label in keys],
    )
    return (
        "<h2>Diversity</h2>"
        f"<p>Synthetic: all {div['synthetic_records']:,} records; the training reference is "
        f"{div['reference_records']:,} records. Higher distinct-n and lower self-BLEU mean more "
        f"varied text; near duplicates share ≥ {div['near_duplicate_jaccard']:g} of their word "
        "3-shingles.</p>" + _beside(chart, "Synthetic against real training records.", table)
    )


def _leakage(report: Mapping[str, Any]) -> str:
    leak = report["leakage"]
    mia = leak["membership_inference"]
    over = leak["ngram_overlap"]
    near = leak["nearest_neighbour"]
    pii = leak["residual_pii"]
    rows = []
    if "auc" in mia:
        rows += [
            ["membership-inference AUC (loss attack; 0.5 = chance)", _f(mia["auc"])],
            ["true positives at 1% false positives", _pct(mia["tpr_at_1pct_fpr"])],
        ]
    else:
        rows.append(["membership inference", escape(mia.get("skipped", ""))])
    rows += [
        [f"samples sharing a {over['n']}-gram with training records", _pct(over["with_training"])],
        ["… with a training subset of the holdout's size", _pct(over["with_training_same_size"])],
        ["… with holdout records (chance level)", _pct(over["with_holdout"])],
        ["longest run of words matching training n-grams", _f(over["longest_training_run"])],
        ["median distance to closest training record: synthetic", _f(near["synthetic_median"])],
        ["… holdout records (never trained on)", _f(near["holdout_median"])],
        ["ratio (≈ 1 no memorisation, 0 copies)", _f(near["median_ratio"])],
        [
            "samples nearer than 95% of holdout records (≈ 5% by chance)",
            _pct(near["closer_than_holdout_p5"]),
        ],
        ["samples identical to a training record (in embedding)", _pct(near["copies"])],
    ]
    if "rate" in pii:
        types = ", ".join(f"{escape(k)}: {v}" for k, v in pii["by_type"].items()) or "none"
        rows.append(["samples with residual PII", f"{_pct(pii['rate'])} ({types})"])
        if "holdout_rate" in pii:
            rows.append(
                [
                    "… holdout records, same analyzer (its rate on real text)",
                    _pct(pii["holdout_rate"]),
                ]
            )
    else:
        rows.append(["residual PII", escape(pii.get("skipped", ""))])
    parts = [
        "<h2>Privacy leakage</h2>",
        '<p class="warn">Every measurement in this section read the training records or '
        "the holdout: none is covered by the model's DP guarantee.</p>",
    ]
    if leak.get("note"):
        parts.append(f'<p class="warn">{escape(str(leak["note"]))}</p>')
    table = _table(["measurement", "value"], rows)
    if "roc" in mia:
        roc = line_chart(
            "plot-roc",
            "Membership inference ROC",
            [("loss attack", [(p[0], p[1]) for p in mia["roc"]])],
            x_label="false-positive rate (holdout called member)",
            y_label="true-positive rate",
            diagonal=True,
        )
        caption = (
            f"{mia['members']:,} training vs {mia['non_members']:,} holdout records; "
            "dashed: chance."
        )
        parts.append(_beside(roc, caption, table))
    else:
        parts.append(table)
    return "".join(parts)


def _canary(report: Mapping[str, Any]) -> str:
    audit = report.get("canary_audit")
    if not isinstance(audit, Mapping):
        return ""  # a report made before the section existed
    head = "<h2>Canary audit of the training mechanism</h2>"
    status = audit.get("status")
    if status != "ran":
        text = audit.get("note") or audit.get("reason") or ""
        kind = "meta" if status == "not requested" else "warn"
        return (
            f'{head}<p class="{kind}">{escape(str(status).capitalize())}: {escape(str(text))}</p>'
        )
    model, run = audit.get("model_run", {}), audit["audit_run"]
    grid = audit["grid"]
    confidence = _pct(audit["confidence"])

    def both(key: str) -> str:
        return f"{_f(run.get(key))} / {_f(model.get(key))}"

    chart = bar_chart(
        "plot-canary",
        "Lower bound on ε per number of guesses",
        [f"{g['guesses']:,} guesses ({g['correct']:,} right)" for g in grid],
        [
            (f"ε lower bound ({confidence})", [g["epsilon_lower_bound"] for g in grid]),
            ("ε claimed", [float(audit["epsilon_claimed"])] * len(grid)),
        ],
        max_value=max(
            [float(audit["epsilon_claimed"]), *(float(g["epsilon_lower_bound"]) for g in grid)]
        )
        or 1.0,
    )
    rows = [
        ["ε claimed by the audited run (its accountant)", _f(audit["epsilon_claimed"])],
        [f"ε lower bound ({confidence} confidence)", _f(audit["epsilon_lower_bound"])],
        ["most this audit could show (every guess right)", _f(audit["largest_possible_bound"])],
        ["claim refuted", _f(bool(audit["refuted"]))],
        ["canaries (trained on)", f"{audit['canaries']:,} ({audit['canaries_included']:,})"],
        ["guesses (right), best grid point", f"{audit['guesses']:,} ({audit['correct']:,})"],
        ["public records; epochs", f"{audit['public_records']:,}; {audit['epochs']}"],
        ["noise σ: audit / model", both("noise_multiplier")],
        ["sample rate q: audit / model", both("sample_rate")],
        ["noisy steps: audit / model", both("steps")],
        ["ε: audit's run / model's card", both("epsilon")],
        ["δ", _f(audit["delta"])],
        ["seconds", f"{float(audit['wall_seconds']):,.0f}"],
    ]
    kind = "warn" if audit["refuted"] else "verdict"
    return (
        head
        + f'<p class="{kind}">{escape(str(audit["verdict"]))}</p>'
        + f"<p>What ran (preset {escape(str(audit['preset']))}): {escape(str(audit['what']))}. "
        f"It checks {escape(str(audit['checks']))}. It read {escape(str(audit['reads']))}.</p>"
        + _beside(
            chart,
            f"Each bar pair is one point of the fixed guess grid; bound: {audit['method']}. "
            f"Score: {audit['score']}.",
            _table(["measurement", "value"], rows),
        )
    )


def _bias(report: Mapping[str, Any]) -> str:
    b = report["bias"]
    groups = b["groups"]
    chart = bar_chart(
        "plot-bias",
        "Demographic terms per 1,000 words",
        [g["group"] for g in groups],
        [
            ("synthetic records", [float(g["synthetic_per_1k"]) for g in groups]),
            ("training records", [float(g["training_per_1k"]) for g in groups]),
        ],
    )
    group_table = _table(
        ["term group", "train /1k", "synth /1k", "train share", "synth share"],
        [
            [escape(g["group"]), _f(g["training_per_1k"]), _f(g["synthetic_per_1k"]),
             _pct(g["training_share"]), _pct(g["synthetic_share"])]
            for g in groups
        ],
    )  # fmt: skip
    label_rows = [
        [
            escape(r.get("label", f"label {i + 1}")),
            _pct(r["training"]),
            _pct(r["synthetic"]),
            _pct(r["shift"]),
        ]
        for i, r in enumerate(b["label_shift"])
    ]
    parts = [
        "<h2>Bias</h2>",
        _beside(chart, "Gendered words and pronouns, and configured term lists.", group_table),
        "<h3>Largest label shifts</h3>",
        _table(["label", "training", "synthetic", "shift"], label_rows),
    ]
    if "largest_term_shifts" in b:
        parts += [
            "<h3>Largest term shifts</h3>",
            _table(
                ["term (group)", "training /1k", "synthetic /1k", "shift"],
                [
                    [f"{escape(t['term'])} ({escape(t['group'])})", _f(t["training_per_1k"]),
                     _f(t["synthetic_per_1k"]), _f(t["shift"])]
                    for t in b["largest_term_shifts"]
                ],
            ),
        ]  # fmt: skip
    return "".join(parts)


def _honesty(report: Mapping[str, Any]) -> str:
    h = report["honesty"]
    rows = [
        [
            escape(m["measurement"]),
            escape(", ".join(m["reads"]) or "synthetic records only"),
            '<span class="covered">yes</span>'
            if m["covered_by_dp"]
            else '<span class="private">no: reads private data</span>',
        ]
        for m in h["measurements"]
    ]
    hold = h["holdout"]
    return (
        "<h2>What this report read</h2>"
        f"<p>{escape(h['statement'])}</p>"
        f"<p>Holdout: {hold['records']:,} records ({_pct(hold['fraction'])} of the dataset), "
        f"{escape(hold['split'])}.</p>"
        + _table(["measurement", "reads", "covered by the DP guarantee"], rows)
    )


def render(report: Mapping[str, Any]) -> str:
    """The whole page for ``report`` (owner's or auditor's view)."""
    privacy = report["privacy"]
    records = report["records"]
    view = report.get("view", "owner: full report")
    title = f"Quality report — {report['model']}"
    return (
        "<!DOCTYPE html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="meta">ε = {privacy["epsilon"]:.3g}, δ = {privacy["delta"]:.2g}, privacy unit: '
        f"{escape(str(privacy['privacy_unit']))}. {records['synthetic']:,} synthetic, "
        f"{records['training']:,} training and {records['holdout']:,} holdout records. "
        f"Created {escape(str(report['created_at']))}. View: {escape(str(view))}.</p>"
        + _summary(report)
        + _utility(report)
        + _fidelity(report)
        + _diversity(report)
        + _leakage(report)
        + _canary(report)
        + _bias(report)
        + _honesty(report)
        + "</main></body></html>"
    )
