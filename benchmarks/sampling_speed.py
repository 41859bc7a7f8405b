"""Sampling speed of the guided preset: one label per batch against labels mixed in a batch.

A request without a label draws each record's label from the model's released mix. Sampled one
label at a time (``sample_per_label``: one lazy ``sample`` stream per label, what
``sample_label_mix`` did before issue 14's batching), a request for a dozen records over
fifteen labels runs a dozen batches of about one row, and every label's last batch runs part
empty; ``sample_labels`` decodes rows of different labels in one batch. Both are timed here,
in the same run, on the same model, with the service's defaults (64 new tokens, batches of
16, temperature 1.0, top-p 0.95):

    .venv/bin/python benchmarks/sampling_speed.py                  # 12, 60 and 240 records
    .venv/bin/python benchmarks/sampling_speed.py --counts 12 --repeats 3

The model is ``smollm2-guided`` built on fortunes' training split (4,298 records, 15 labels)
with its statistics released at σ = 0.65 (ε ≈ 8 for this size); what it writes does not
change the timing's meaning, only the decoding's shape does. Ratios are records per second
of the mixed batches over the per-label streams; > 1 is faster.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

import torch
from utility import load_split

PRESET = "smollm2-guided"
SIGMA = 0.65


def build(threads: int) -> tuple[Any, Any, dict[str, float]]:
    """The preset's model with a fortunes release attached, and its label mix."""
    from privsynth.models.dp_train import Example
    from privsynth.models.family import load_generator, tokenizer_for_preset
    from privsynth.models.guided import build_guided, release_for_model
    from privsynth.models.token_stats import GuidedDecoding

    torch.set_num_threads(threads)
    train, _ = load_split(corpus="fortunes")
    examples = [Example(text=r["text"], label=r["label"]) for r in train]
    tok = tokenizer_for_preset(PRESET)
    result = build_guided(examples, preset=PRESET, tokenizer=tok, delta=1e-5)
    model, tokenizer = load_generator(result.weights, result.model_config, device="cpu")
    decoding = GuidedDecoding.from_dict(result.model_config["decoding"])
    labels = sorted({e.label for e in examples if e.label})
    stats = release_for_model(
        examples, tokenizer=tok, labels=labels, noise_multiplier=SIGMA, decoding=decoding
    )
    decoding.attach(model, stats, device="cpu")
    counts: dict[str, int] = {}
    for e in examples:
        if e.label:
            counts[e.label] = counts.get(e.label, 0) + 1
    return model, tokenizer, {k: v / len(examples) for k, v in counts.items()}


def main() -> int:
    from privsynth.models.sampling import SamplingParams, sample_labels, sample_per_label

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[12, 60, 240])
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per cell (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16, help="the service's is 16")
    args = ap.parse_args()

    started = time.perf_counter()
    model, tokenizer, mix = build(args.threads)
    print(f"built {PRESET} on fortunes in {time.perf_counter() - started:.0f} s\n")
    names = sorted(mix)
    ways = {
        "per-label streams (before)": lambda p, d: sample_per_label(
            model, tokenizer, p, d, batch_size=args.batch_size
        ),
        "labels mixed in a batch": lambda p, d: sample_labels(
            model, tokenizer, p, d, batch_size=args.batch_size
        ),
    }
    print("| records | labels in request | way | seconds | records/s | ratio |")
    print("|---|---|---|---|---|---|")
    for n in args.counts:
        drawn = random.Random(n).choices(names, weights=[mix[k] for k in names], k=n)
        params = SamplingParams(count=n, seed=n, max_tokens=args.max_tokens)
        rates = {}
        for way, run in ways.items():
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = list(run(params, drawn))
                times.append(time.perf_counter() - t0)
                assert sorted(drawn) == sorted(str(s.label) for s in out)
            seconds = statistics.median(times)
            rates[way] = n / seconds
            ratio = rates[way] / next(iter(rates.values()))
            print(
                f"| {n} | {len(set(drawn))} | {way} | {seconds:.1f} | {rates[way]:.2f} "
                f"| {ratio:.2f}× |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
