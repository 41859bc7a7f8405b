"""The full quality report on the fortunes corpus at several ε, side by side (issue 15).

For each ε: hold out 10% of the labelled fortunes (benchmarks/data/fortunes_topic15.jsonl.gz,
15 topics) exactly as a training job does (privsynth.server.privacy.holdout, a fresh secret key
per run), train the preset with DP-SGD on the rest, sample it with the training label mix, and
compute the report the server's EvaluateModel computes (server/evaluation): utility with its
references (real data at the synthetic size, DP bags of words at the same ε — counted words
and words drawn from DP label centroids — and label names),
fidelity, diversity, leakage (membership inference, 8-gram overlap, distance to closest record,
residual PII by the scrubbing analyzer) and bias; with --canary-audit also the canary audit of
the training mechanism (the preset retrained at the same ε on public text with random canaries,
as ``privsynth evaluate --canary-audit`` does). Writes report-eps<ε>.json/.html per ε and
prints one table with a column per ε.

    nice python benchmarks/report.py [--epsilons 1 4 8] [--preset smollm2] [--samples 1000]
        [--canary-audit]

The default preset (smollm2, DP-LoRA on SmolLM2-135M) takes about an hour per ε on 2 cores;
``--preset small`` takes minutes. The training labels are declared public (the topics are a
public taxonomy), as the utility benchmark does.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "fortunes_topic15.jsonl.gz"


def load() -> list[Any]:
    from privsynth.models.dp_train import Example

    rows = [json.loads(x) for x in gzip.decompress(DATA.read_bytes()).decode().splitlines()]
    return [Example(text=r["text"], label=r["label"]) for r in rows]


def detector() -> Any:
    from privsynth.server.scrubbing.scrubber import Scrubber

    scrubber = Scrubber()
    scrubber.load()

    def detect(texts: Any) -> list[list[str]]:
        return [[r.entity_type for r in found] for found in scrubber.analyze_batch(list(texts))]

    return detect


def run_one(
    eps: float, args: argparse.Namespace, examples: list[Any], detect: Any
) -> dict[str, Any]:
    from dataclasses import replace

    from privsynth.models.dp_train import DPConfig, train_dp
    from privsynth.models.family import load_generator, tokenizer_for_preset
    from privsynth.server.evaluation import EvaluationInputs, Record, build_report
    from privsynth.server.evaluation.canary import for_model
    from privsynth.server.evaluation.gather import model_tools, synthesize
    from privsynth.server.evaluation.page import render
    from privsynth.server.privacy import holdout
    from privsynth.server.privacy.empirical_audit import PrivacyAuditor

    split = holdout.split(
        examples, fraction=args.holdout, key=secrets.token_bytes(32), job_id=f"bench-{eps:g}"
    )
    delta = min(1e-5, 1 / (10 * len(split.training)))
    t0 = time.monotonic()
    result = train_dp(
        split.training,
        config=DPConfig.for_preset(
            args.preset, target_epsilon=eps, target_delta=delta, epochs=args.epochs
        ),
        tokenizer=tokenizer_for_preset(args.preset),
    )
    train_s = time.monotonic() - t0
    model, tok = load_generator(result.weights, result.model_config)
    mix = Counter(str(e.label) for e in split.training)
    t1 = time.monotonic()
    synthetic = synthesize(model, tok, {k: float(v) for k, v in mix.items()}, args.samples)
    sample_s = time.monotonic() - t1
    inputs = EvaluationInputs(
        model=f"fortunes/{args.preset}/eps{eps:g}",
        epsilon=float(result.epsilon_spent),
        delta=delta,
        privacy_unit="record",
        holdout_fraction=args.holdout,
        training=[Record(e.text, e.label) for e in split.training],
        holdout=[Record(e.text, e.label) for e in split.holdout],
        synthetic=synthetic,
    )
    t2 = time.monotonic()
    audit = for_model(
        result.card,
        model=inputs.model,
        requested=args.canary_audit,
        auditor=PrivacyAuditor(torch_threads=args.threads),
    )
    report = build_report(
        inputs, replace(model_tools(model, tok, detect=detect), canary_audit=audit)
    )
    report["benchmark"] = {
        "preset": args.preset,
        "epochs": args.epochs,
        "train_s": round(train_s, 1),
        "sample_s": round(sample_s, 1),
        "report_s": round(time.monotonic() - t2, 1),
        "noise_multiplier": result.card.get("noise_multiplier"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"report-eps{eps:g}.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    (out / f"report-eps{eps:g}.html").write_text(render(report))
    return report


def _row(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next((r for r in report["utility"].get("rows", []) if r["name"].startswith(name)), {})


ROWS: list[tuple[str, Any]] = [
    ("acc trained on synthetic", lambda r: _row(r, "synthetic")["accuracy"]),
    ("macro-F1 synthetic", lambda r: _row(r, "synthetic")["macro_f1"]),
    ("utility retained", lambda r: _row(r, "synthetic")["retained"]),
    ("acc real (training records)", lambda r: _row(r, "real training")["accuracy"]),
    ("acc real at synthetic size", lambda r: _row(r, "real records at")["accuracy"]),
    ("acc DP bag-of-words, same eps", lambda r: _row(r, "DP bag-of-words")["accuracy"]),
    (
        "acc DP centroid bag-of-words, same eps",
        lambda r: _row(r, "DP centroid bag-of-words").get("accuracy", float("nan")),
    ),
    ("acc label names only", lambda r: _row(r, "label names")["accuracy"]),
    ("acc majority class", lambda r: _row(r, "majority")["accuracy"]),
    ("unigram JS (holdout floor)", lambda r: r["fidelity"]["rows"][1]["unigram_js"]),
    ("unigram JS synthetic", lambda r: r["fidelity"]["rows"][0]["unigram_js"]),
    ("bigram JS synthetic", lambda r: r["fidelity"]["rows"][0]["bigram_js"]),
    ("MAUVE synthetic", lambda r: r["fidelity"]["rows"][0]["mauve"]),
    ("MAUVE holdout (floor)", lambda r: r["fidelity"]["rows"][1]["mauve"]),
    ("Frechet synthetic", lambda r: r["fidelity"]["rows"][0]["frechet"]),
    ("Frechet holdout (floor)", lambda r: r["fidelity"]["rows"][1]["frechet"]),
    ("length KS synthetic", lambda r: r["fidelity"]["rows"][0]["length_ks"]),
    ("label mix TV", lambda r: r["fidelity"]["label_mix"]["total_variation"]),
    ("distinct-2 synthetic", lambda r: r["diversity"]["synthetic"]["distinct_2"]),
    ("distinct-2 training", lambda r: r["diversity"]["training_reference"]["distinct_2"]),
    ("self-BLEU synthetic", lambda r: r["diversity"]["synthetic"]["self_bleu"]),
    ("exact duplicates", lambda r: r["diversity"]["synthetic"]["exact_duplicate_rate"]),
    ("MIA AUC", lambda r: r["leakage"]["membership_inference"]["auc"]),
    ("MIA TPR at 1% FPR", lambda r: r["leakage"]["membership_inference"]["tpr_at_1pct_fpr"]),
    ("8-gram overlap training", lambda r: r["leakage"]["ngram_overlap"]["with_training"]),
    (
        "8-gram overlap train, holdout size",
        lambda r: r["leakage"]["ngram_overlap"]["with_training_same_size"],
    ),
    ("8-gram overlap holdout", lambda r: r["leakage"]["ngram_overlap"]["with_holdout"]),
    ("DCR ratio synth/holdout", lambda r: r["leakage"]["nearest_neighbour"]["median_ratio"]),
    ("residual PII rate", lambda r: r["leakage"]["residual_pii"].get("rate")),
    ("female share synthetic", lambda r: r["bias"]["groups"][0]["synthetic_share"]),
    ("female share training", lambda r: r["bias"]["groups"][0]["training_share"]),
    ("canary audit eps lower bound", lambda r: r["canary_audit"]["epsilon_lower_bound"]),
    ("canary audit eps claimed", lambda r: r["canary_audit"]["epsilon_claimed"]),
    ("train seconds", lambda r: r["benchmark"]["train_s"]),
    ("sample seconds", lambda r: r["benchmark"]["sample_s"]),
    ("report seconds", lambda r: r["benchmark"]["report_s"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0, 4.0, 8.0])
    parser.add_argument("--preset", default="smollm2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--holdout", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-pii", action="store_true", help="skip the residual-PII scan")
    parser.add_argument(
        "--canary-audit",
        action="store_true",
        help="also run the canary audit of the training mechanism (one more training run per "
        "eps, on public text)",
    )
    parser.add_argument("--out", default="build/quality-report")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="print the table from report-eps<E>.json files already in --out (runs at "
        "different epsilons may be run as separate processes, then tabulated together)",
    )
    args = parser.parse_args()

    started = time.monotonic()
    reports = {}
    if args.table_only:
        for eps in args.epsilons:
            path = Path(args.out) / f"report-eps{eps:g}.json"
            reports[eps] = json.loads(path.read_text(encoding="utf-8"))
    else:
        import torch

        torch.set_num_threads(args.threads)
        examples = load()
        detect = None if args.no_pii else detector()
        for eps in args.epsilons:
            t = time.monotonic()
            reports[eps] = run_one(eps, args, examples, detect)
            print(f"eps={eps:g}: done in {time.monotonic() - t:.0f}s", flush=True)
            print("  " + reports[eps]["utility"].get("verdict", "(no utility)"), flush=True)
    print()
    first = reports[args.epsilons[0]]
    print(
        f"fortunes: {first['records']['training']} training / {first['records']['holdout']} "
        f"holdout records, {first['records']['synthetic']} synthetic per eps; "
        f"preset={first['benchmark']['preset']} epochs={first['benchmark']['epochs']}; "
        f"embeddings: {first['fidelity']['embedding']}"
    )
    header = f"{'measure':36}" + "".join(f"{'eps=' + format(e, 'g'):>10}" for e in args.epsilons)
    print(header)
    print("-" * len(header))
    for name, get in ROWS:
        cells = []
        for eps in args.epsilons:
            try:
                value = get(reports[eps])
            except (KeyError, IndexError, TypeError):
                value = None
            cells.append(
                f"{'-':>10}"
                if value is None or (isinstance(value, float) and math.isnan(value))
                else f"{value:10.3f}"
                if isinstance(value, float)
                else f"{value!s:>10}"
            )
        print(f"{name:36}" + "".join(cells))
    print(f"\ntotal {time.monotonic() - started:.0f}s; reports in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
