"""Utility of DP synthetic data: train on synthetic, test on real (fortunes, 15 topics).

Holds out 20% of the labelled fortunes corpus (stratified, fixed seed); trains a generator on
the rest at each ε (and without DP as the ceiling); samples as many records as the training
split with the same label mix; trains TF-IDF + logistic regression on each synthetic set and on
the real training split; reports accuracy on the real holdout against the majority class and
the utility retained, (acc_syn - acc_maj) / (acc_real - acc_maj), which does not flatter a
model that only learned the label mix. Also reports the generator's perplexity on the real
holdout and label fidelity (how often a classifier trained on real data agrees with the label
a record was generated under).

    python benchmarks/utility.py [--epsilons 1 4 8 inf] [--epochs 5] [--preset small]

ε = 0 is the preset's public starting point with no training at all (for a pretrained base:
what prompting it with the label alone achieves), the floor DP training must beat.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

DATA = Path(__file__).parent / "data" / "fortunes_topic15.jsonl.gz"


def load_split(
    seed: int = 0, holdout: float = 0.2
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rows = [json.loads(x) for x in gzip.decompress(DATA.read_bytes()).decode().splitlines()]
    by_label: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)
    rng = random.Random(seed)
    train, test = [], []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        k = max(1, round(len(items) * holdout))
        test += items[:k]
        train += items[k:]
    return train, test


def classifier(texts: list[str], labels: list[str]) -> object:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, min_df=1, ngram_range=(1, 2)),
        LogisticRegression(max_iter=2000, C=5.0),
    )
    clf.fit(texts, labels)
    return clf


def accuracy(clf: object, rows: list[dict[str, str]]) -> float:
    pred = clf.predict([r["text"] for r in rows])  # type: ignore[attr-defined]
    return sum(p == r["label"] for p, r in zip(pred, rows, strict=False)) / len(rows)


def references(
    train: list[dict[str, str]], test: list[dict[str, str]], fraction: float
) -> list[tuple[str, float]]:
    """Accuracy on the real holdout of classifiers that bracket what a synthetic set can show.

    * real data subsampled to the synthetic set's size (and to 0.5×): a synthetic set of that
      size cannot be expected to beat real records of that size, so these are the fair
      ceilings for a run at ``--synthetic-fraction`` < 1;
    * each record replaced by its label's name alone: what a generator that only echoes the
      control code would retain. A generator whose synthetic set does not beat this row has
      shown no topic signal beyond the words of its prompt.
    """
    rows = []
    for f in sorted({fraction, 0.5}):
        if f >= 1:
            continue
        rng = random.Random(0)
        sub = [r for r in train if rng.random() < f]
        clf = classifier([r["text"] for r in sub], [r["label"] for r in sub])
        rows.append((f"real data, {f:g}x ({len(sub)} records)", accuracy(clf, test)))
    names = [r["label"] for r in train]
    rows.append(("label names only (the prompt's words)", accuracy(classifier(names, names), test)))
    return rows


def train_generator(train: list[dict[str, str]], eps: float, args: argparse.Namespace):
    import torch
    from privsynth.models.dp_train import DPConfig, Example, train_dp
    from privsynth.models.family import load_generator, tokenizer_for_preset

    tok = tokenizer_for_preset(args.preset)
    examples = [Example(text=r["text"], label=r["label"]) for r in train]
    if eps == 0:
        from privsynth.models.dp_train import initial_model

        model, _ = initial_model(args.preset, tok)
        model.eval()
        return model, None
    if math.isinf(eps):
        return train_nonprivate(examples, args), None
    delta = min(1e-5, 1 / (10 * len(examples)))
    res = train_dp(
        examples,
        config=DPConfig(
            target_epsilon=eps,
            target_delta=delta,
            epochs=args.epochs,
            preset=args.preset,
            grad_sample_mode=args.mode,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            max_physical_batch_size=args.physical_batch,
        ),
        tokenizer=tok,
    )
    torch.manual_seed(0)
    return load_generator(res.weights, res.model_config)[0], res.card


def train_nonprivate(examples, args: argparse.Namespace):
    """Same model, data layout, batches and epochs, without clipping or noise (the ceiling)."""
    import torch
    from privsynth.models.dp_train import _per_record_loss, encode_example, initial_model
    from privsynth.models.family import prompt_positions, tokenizer_for_preset
    from torch import nn

    tok = tokenizer_for_preset(args.preset)
    model, _ = initial_model(args.preset, tok)
    max_len = model.cfg.max_len
    prompts = {e.label: tok.prompt(e.label) for e in examples}
    seqs = [
        torch.tensor(encode_example(tok, ids, prompts[e.label], max_len))
        for e, ids in zip(examples, tok.encode_batch([e.text for e in examples]), strict=False)
    ]
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rng = random.Random(0)
    model.train()
    for _ in range(args.epochs):
        order = list(range(len(seqs)))
        rng.shuffle(order)
        for i in range(0, len(order), 64):
            batch = nn.utils.rnn.pad_sequence(
                [seqs[j] for j in order[i : i + 64]], batch_first=True, padding_value=tok.pad_id
            )
            logits, targets = model(batch[:, :-1]), batch[:, 1:]
            targets = targets.masked_fill(targets >= logits.shape[-1], tok.pad_id)
            targets = targets.masked_fill(prompt_positions(batch, tok.prompt_end), tok.pad_id)
            loss = _per_record_loss(logits, targets, tok.pad_id)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return model


def perplexity(model, rows: list[dict[str, str]], preset: str) -> float:
    from privsynth.models.dp_train import encode_example
    from privsynth.models.family import tokenizer_for_preset
    from privsynth.models.pretrain import evaluate_perplexity

    tok = tokenizer_for_preset(preset)
    seqs = [
        encode_example(tok, ids, tok.prompt(r["label"]), model.cfg.max_len)
        for r, ids in zip(rows, tok.encode_batch([r["text"] for r in rows]), strict=False)
    ]
    ppl = evaluate_perplexity(model, seqs, tok.pad_id, prompt_end=tok.prompt_end)
    model.eval()
    return ppl


def synthesize(
    model,
    mix: Counter[str],
    seed: int,
    max_tokens: int,
    preset: str,
    temperature: float,
    guidance: float = 0.0,
) -> list[dict[str, str]]:
    from privsynth.models.family import tokenizer_for_preset
    from privsynth.models.sampling import SamplingParams, sample

    tok = tokenizer_for_preset(preset)
    out = []
    for i, (label, n) in enumerate(sorted(mix.items())):
        params = SamplingParams(
            count=n,
            seed=seed + i,
            label=label,
            max_tokens=max_tokens,
            temperature=temperature,
            guidance=guidance,
        )
        out += [
            {"text": s.text, "label": label} for s in sample(model, tok, params, batch_size=128)
        ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", nargs="+", default=["1", "4", "8", "inf"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--mode", default="auto", help="grad_sample_mode")
    parser.add_argument("--batch-size", type=int, default=64, help="expected DP batch size")
    parser.add_argument("--lr", type=float, default=5e-3, help="DP learning rate")
    parser.add_argument(
        "--physical-batch", type=int, default=0, help="split DP batches (0: no limit)"
    )
    parser.add_argument(
        "--synthetic-fraction",
        type=float,
        default=1.0,
        help="synthesize this fraction of the training split's size (same label mix)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        default=[1.0],
        help="sampling temperatures (each trained model is sampled at each)",
    )
    parser.add_argument(
        "--guidance",
        type=float,
        nargs="+",
        default=[0.0],
        help="classifier-free guidance weights on the label (sampled at each; 0: off)",
    )
    parser.add_argument("--samples-out", default="", help="write 3 samples per eps here (JSON)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    train, test = load_split()
    mix = Counter(r["label"] for r in train)
    majority = max(Counter(r["label"] for r in test).values()) / len(test)
    real_clf = classifier([r["text"] for r in train], [r["label"] for r in train])
    acc_real = accuracy(real_clf, test)
    print(
        f"fortunes: {len(train)} train / {len(test)} holdout, {len(mix)} labels; "
        f"preset={args.preset} epochs={args.epochs} batch={args.batch_size} lr={args.lr:g} "
        f"T={args.temperature} w={args.guidance} synthetic={args.synthetic_fraction:g}x",
        flush=True,
    )

    def _retained(acc: float) -> float:
        return (acc - majority) / (acc_real - majority)

    rows = []
    examples: dict[str, list[dict[str, str]]] = {}
    for eps_s in args.epsilons:
        eps = float(eps_s)
        t0 = time.monotonic()
        model, card = train_generator(train, eps, args)
        train_s = time.monotonic() - t0
        ppl = perplexity(model, test, args.preset)
        print(f"  eps={eps_s}: trained in {train_s:.0f}s, holdout ppl {ppl:.1f}", flush=True)
        scaled = Counter({k: max(1, round(v * args.synthetic_fraction)) for k, v in mix.items()})
        sigma = card["noise_multiplier"] if card else 0.0
        for temperature, guidance in [(t, g) for t in args.temperature for g in args.guidance]:
            synth = synthesize(
                model,
                scaled,
                seed=1,
                max_tokens=args.max_tokens,
                preset=args.preset,
                temperature=temperature,
                guidance=guidance,
            )
            acc_syn = accuracy(
                classifier([r["text"] for r in synth], [r["label"] for r in synth]), test
            )
            fidelity = accuracy(real_clf, synth)
            retained = _retained(acc_syn)
            rows.append(
                (eps_s, temperature, guidance, acc_syn, retained, ppl, fidelity, train_s, sigma)
            )
            examples[f"{eps_s}@T{temperature:g}w{guidance:g}"] = synth[:: max(1, len(synth) // 3)][
                :3
            ]
            print(
                f"  eps={eps_s} T={temperature:g} w={guidance:g}: acc {acc_syn:.3f}, "
                f"retained {retained:.2f}, ppl {ppl:.0f}, fidelity {fidelity:.2f}, "
                f"train {train_s:.0f}s",
                flush=True,
            )
    print()
    print(f"real-data classifier accuracy {acc_real:.3f}; majority class {majority:.3f}")
    for name, acc in references(train, test, args.synthetic_fraction):
        print(f"  reference: {name}: acc {acc:.3f}, retained {_retained(acc):.2f}")
    print(
        f"{'epsilon':>8} {'T':>4} {'w':>4} {'acc_syn':>8} {'retained':>9} {'val_ppl':>8} "
        f"{'label_fid':>10} {'train_s':>8} {'sigma':>6}"
    )
    for eps_s, temperature, guidance, acc_syn, retained, ppl, fid, train_s, sigma in rows:
        print(
            f"{eps_s:>8} {temperature:4g} {guidance:4g} {acc_syn:8.3f} {retained:9.2f} {ppl:8.0f} "
            f"{fid:10.2f} {train_s:8.0f} {sigma:6.2f}"
        )
    if args.samples_out:
        Path(args.samples_out).write_text(json.dumps(examples, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
