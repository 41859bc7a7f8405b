"""Empirical privacy audit of a preset's DP-SGD: claimed ε beside a 95% lower bound (issue 11).

For each target ε, one training run with m random canaries (each included with probability ½)
beside the shipped public Austen paragraphs, with the job's exact mechanism
(``privsynth.models.privacy_audit.run_privacy_audit``); inclusion is guessed from each canary's
loss drop against the public base and turned into a lower bound with the one-run method of
Steinke, Nasr and Jagielski (Theorem 5.2, with δ; guess grid Bonferroni-corrected).

Baseline, measured in the same run: the same audit with the Gaussian noise switched off
(clipping and Poisson sampling unchanged; the card's ε is then false). It shows what this
attack can see when nothing hides the canaries, and so how much of the gap between claim and
bound is the attack's weakness rather than the mechanism's strength.

    python benchmarks/privacy_audit.py [--preset small] [--epsilon 1 4 8] [--canaries 1000]
        [--public-records 1000] [--epochs 3] [--threads 2] [--no-baseline] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import pkgutil
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def noise_off() -> Iterator[list[int]]:
    """Benchmark-only: every Opacus optimizer adds zero noise (as the unit test's hook)."""
    import opacus.optimizers
    import torch

    calls = [0]
    saved = []

    def zero(std: Any, reference: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        return torch.zeros_like(reference)

    for info in pkgutil.iter_modules(opacus.optimizers.__path__):
        module = importlib.import_module(f"opacus.optimizers.{info.name}")
        if hasattr(module, "_generate_noise"):
            saved.append((module, module._generate_noise))
            module._generate_noise = zero
    try:
        yield calls
    finally:
        for module, original in saved:
            module._generate_noise = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    ap.add_argument("--canaries", type=int, default=1000)
    ap.add_argument("--public-records", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch
    from privsynth.models.privacy_audit import AuditConfig, run_privacy_audit

    torch.set_num_threads(args.threads)
    runs: list[tuple[str, float]] = [("DP-SGD", e) for e in args.epsilon]
    if not args.no_baseline:
        runs.append(("noise off", min(args.epsilon)))
    rows = []
    for label, epsilon in runs:
        config = AuditConfig(
            preset=args.preset,
            target_epsilon=epsilon,
            canaries=args.canaries,
            public_records=args.public_records,
            epochs=args.epochs,
        )
        ctx = noise_off() if label == "noise off" else contextlib.nullcontext([0])
        with ctx as calls:
            result = run_privacy_audit(config)
        if label == "noise off" and not calls[0]:
            raise SystemExit("noise hook was not called: training no longer uses Opacus' noise")
        data = result.to_dict()
        data["mechanism"] = label
        rows.append(data)
        print(
            f"{label:9s} {result.preset:6s} eps claimed {result.epsilon_claimed:6.3f}  "
            f"lower bound {result.epsilon_lower_bound:6.3f}  sigma {result.noise_multiplier:.3f}"
            f"  {result.correct}/{result.guesses} right  {result.wall_seconds:.0f}s",
            file=sys.stderr,
            flush=True,
        )

    header = (
        "| mechanism | preset | ε claimed | ε lower bound (95%) | δ | σ | canaries (in) "
        "| guesses | correct | wall s |"
    )
    print(header)
    print("|---" * 10 + "|")
    for r in rows:
        print(
            f"| {r['mechanism']} | {r['preset']} | {r['epsilon_claimed']:.2f} "
            f"| {r['epsilon_lower_bound']:.2f} | {r['delta']:.1e} | {r['noise_multiplier']:.2f} "
            f"| {r['canaries']} ({r['canaries_included']}) | {r['guesses']} | {r['correct']} "
            f"| {r['wall_seconds']:.0f} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
