"""Throughput and peak memory of DP training modes against non-private training.

Runs each mode in its own subprocess (so peak RSS is that mode's own), on the same model, data
and batches: the preset's model (the small transformer by default; ``--preset smollm2`` for
DP-LoRA on SmolLM2), Poisson-free fixed batches of 64 real fortunes records, each batch padded
to its own longest record. Prints tokens/s and peak memory, and both as
ratios to non-private training measured in the same run.

    python benchmarks/dp_train.py [--steps 30] [--threads 2] [--preset small]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODES = ("nonprivate", "ghost", "hooks")


def run_mode(
    mode: str, steps: int, threads: int, preset: str, batch: int, distinct_batches: int
) -> dict[str, float]:
    import warnings

    import torch
    from torch import nn

    warnings.filterwarnings("ignore")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from corpus_loader import load_texts
    from privsynth.models.dp_train import _per_record_loss, encode_example, initial_model
    from privsynth.models.family import tokenizer_for_preset

    tok = tokenizer_for_preset(preset)
    model, _ = initial_model(preset, tok)
    max_len = model.cfg.max_len
    texts = load_texts()
    seqs = [
        torch.tensor(encode_example(tok, ids, tok.prompt(None), max_len))
        for ids in tok.encode_batch(texts)
    ]
    # A pretrained base (hf-lora) caches its frozen bottom per record across epochs; cycling
    # over `distinct` batches, all seen during warm-up, times the steady state of epochs >= 2.
    distinct = steps if distinct_batches <= 0 else distinct_batches
    batches = [
        nn.utils.rnn.pad_sequence(
            seqs[(i % distinct) * batch : (i % distinct + 1) * batch],
            batch_first=True,
            padding_value=tok.pad_id,
        )
        for i in range(steps)
    ]
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    criterion = nn.CrossEntropyLoss(ignore_index=tok.pad_id)
    dp_criterion = None
    if mode != "nonprivate":
        from opacus import PrivacyEngine
        from torch.utils.data import DataLoader, TensorDataset

        dummy = DataLoader(TensorDataset(torch.zeros(len(seqs), 1)), batch_size=batch)
        engine = PrivacyEngine(accountant="prv")
        made = engine.make_private(
            module=model,
            optimizer=opt,
            data_loader=dummy,
            criterion=criterion,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            grad_sample_mode=mode,
            poisson_sampling=False,
        )
        if mode == "ghost":
            model, opt, dp_criterion, _ = made
        else:
            model, opt, _ = made
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tokens = 0
    started = None
    for i, seq in enumerate(batches):
        if i == 3:  # warm-up steps excluded from timing
            started = time.perf_counter()
            tokens = 0
        inputs, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
        opt.zero_grad(set_to_none=True)
        logits = model(inputs)
        targets = targets.masked_fill(targets >= logits.shape[-1], tok.pad_id)
        if dp_criterion is not None:
            b, t = targets.shape
            loss = dp_criterion(logits.reshape(b * t, -1), targets.reshape(-1), shape=(b, t))
        else:
            loss = _per_record_loss(logits, targets, tok.pad_id)
        loss.backward()
        opt.step()
        tokens += int((targets != tok.pad_id).sum())
    assert started is not None
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "tokens_per_s": tokens / elapsed,
        "peak_rss_mb": peak / 1024,
        "train_rss_mb": max(peak - base_rss, 1) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--distinct-batches",
        type=int,
        default=0,
        help="cycle over this many batches (0: all distinct); 3 for hf-lora steady state",
    )
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        result = run_mode(
            args.mode, args.steps, args.threads, args.preset, args.batch, args.distinct_batches
        )
        print(json.dumps(result))
        return 0
    results = {}
    for mode in MODES:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--mode",
                mode,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
                "--preset",
                args.preset,
                "--batch",
                str(args.batch),
                "--distinct-batches",
                str(args.distinct_batches),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["nonprivate"]
    print(
        f"preset={args.preset} batch={args.batch} steps={args.steps} threads={args.threads} "
        f"distinct_batches={args.distinct_batches or args.steps}"
    )
    print(
        f"{'mode':12} {'tokens/s':>10} {'x nonpriv':>10} {'peak MB':>9} {'x nonpriv':>10} "
        f"{'train MB':>9} {'x nonpriv':>10}"
    )
    for mode, r in results.items():
        print(
            f"{mode:12} {r['tokens_per_s']:10.0f} {r['tokens_per_s'] / base['tokens_per_s']:10.2f}"
            f" {r['peak_rss_mb']:9.0f} {r['peak_rss_mb'] / base['peak_rss_mb']:10.2f}"
            f" {r['train_rss_mb']:9.0f} {r['train_rss_mb'] / base['train_rss_mb']:10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
