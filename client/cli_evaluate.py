"""``privsynth evaluate MODEL``: a quality report of a trained model, as JSON and HTML files.

The server samples the model and compares the sample with the model's training records and its
holdout (records training never saw): utility (a classifier trained on synthetic records, tested
on real ones), fidelity, diversity, privacy leakage and bias. Those comparisons read private
data again, which the model's DP guarantee does not cover; the server records every evaluation
in the audit log and the report lists what each measurement read. The command follows the
evaluation job, then writes report.json and report.html (one self-contained page) into
--out; members get the full report, auditors counts and scores only. With --canary-audit the
report also holds the empirical canary audit of the model's training mechanism: its preset
retrained at the model's epsilon on public text with random canaries (no private data, no
budget; minutes to tens of minutes more), a 95% lower bound on epsilon beside the claim.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from privsynth.client.cli_support import (
    connect,
    json_mode,
    message_dict,
    positive_int32_arg,
    print_json,
    resource_name,
)
from privsynth.client.exit_codes import ExitCode
from privsynth.client.pb import evaluation_pb2

__all__ = ["cmd_evaluate", "register"]

_DONE = {
    evaluation_pb2.EVALUATION_STATE_SUCCEEDED,
    evaluation_pb2.EVALUATION_STATE_FAILED,
    evaluation_pb2.EVALUATION_STATE_CANCELLED,
}


def _progress(evaluation: Any) -> None:
    state = evaluation_pb2.EvaluationState.Name(evaluation.state).removeprefix("EVALUATION_STATE_")
    stage = f" {evaluation.stage}" if evaluation.stage else ""
    print(
        f"  {state.lower()}{stage} ({evaluation.stages_done}/{evaluation.stages_total})",
        file=sys.stderr,
    )


def _summary(report: dict[str, Any]) -> list[str]:
    """A few lines for people: the verdict and the headline numbers."""
    lines = []
    util = report.get("utility", {})
    if "verdict" in util:
        lines.append(util["verdict"])
    fid = report.get("fidelity", {}).get("rows", [{}])[0]
    leak = report.get("leakage", {})
    mia = leak.get("membership_inference", {})
    over = leak.get("ngram_overlap", {})
    if "mauve" in fid:
        lines.append(f"MAUVE vs training {fid['mauve']:.3f}; bigram JS {fid['bigram_js']:.3f}")
    if "auc" in mia:
        lines.append(
            f"membership inference AUC {mia['auc']:.3f} (0.5 = chance); samples sharing an "
            f"8-gram with training {100 * over.get('with_training', 0):.1f}% "
            f"(holdout {100 * over.get('with_holdout', 0):.1f}%)"
        )
    audit = report.get("canary_audit", {})
    if audit.get("status") == "ran":
        lines.append(f"canary audit: {audit['verdict']}")
    elif audit.get("status") in ("unavailable", "failed"):
        lines.append(f"canary audit {audit['status']}: {audit.get('reason', '')}")
    return lines


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Start an evaluation, follow it, and write its report files."""
    import json

    with connect(args) as client:
        evaluation = client.evaluate_model(
            resource_name("models", args.model),
            sample_count=args.samples,
            canary_audit=args.canary_audit,
        )
        print(
            f"{evaluation.name} of {evaluation.model}: {evaluation.sample_count} samples; it "
            "reads the training records and the holdout (not covered by DP; audit-logged)",
            file=sys.stderr,
        )
        if args.no_wait:
            if json_mode(args):
                print_json(message_dict(evaluation))
            else:
                print(evaluation.name)
            return ExitCode.OK
        for snapshot in client.watch_evaluation(evaluation.name):
            evaluation = snapshot
            if not args.quiet:
                _progress(snapshot)
        if evaluation.state != evaluation_pb2.EVALUATION_STATE_SUCCEEDED:
            state = evaluation_pb2.EvaluationState.Name(evaluation.state)
            print(f"{evaluation.name}: {state} {evaluation.error_message}", file=sys.stderr)
            return ExitCode.NEGATIVE
        report = client.get_evaluation_report(evaluation.name)
    out = Path(args.out or f"evaluation-{evaluation.name.split('/')[-1]}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(report.json + "\n", encoding="utf-8")
    (out / "report.html").write_text(report.html, encoding="utf-8")
    data = json.loads(report.json)
    if json_mode(args):
        print_json(
            {
                "evaluation": evaluation.name,
                "view": report.view,
                "files": [str(out / "report.json"), str(out / "report.html")],
                "report": data,
            }
        )
    else:
        for line in _summary(data):
            print(line)
        print(f"report ({report.view} view): {out / 'report.html'} and {out / 'report.json'}")
    return ExitCode.OK


def register(sub: Any) -> None:
    """Add the ``evaluate`` command to the CLI's sub-parsers."""
    p = sub.add_parser(
        "evaluate",
        help="quality report of a model: utility, fidelity, diversity, leakage, bias",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("model", help="models/<id> or the id")
    p.add_argument(
        "--samples",
        type=positive_int32_arg,
        default=0,
        help="synthetic records to draw, 100..5000 (default 1000)",
    )
    p.add_argument(
        "--out",
        default="",
        help="directory for report.json and report.html (default ./evaluation-<id>)",
    )
    p.add_argument(
        "--canary-audit",
        action="store_true",
        help="also audit the model's training mechanism with canaries (retrains its preset on "
        "public text: no private data, no budget; refused for a model trained without DP-SGD)",
    )
    p.add_argument("--no-wait", action="store_true", help="return after starting it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_evaluate)
