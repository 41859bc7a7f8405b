"""Non-private pretraining of the small transformer on a public corpus.

DP-SGD from scratch on a few thousand records spends its whole budget learning English; the
noise then drowns the signal that is specific to the private corpus. Pretraining on public text
first (Li et al. 2022; Yue et al. 2023) lets the private run spend ε only on adapting. Only
public data may be used here: the result ships as a base model whose provenance every model
card repeats.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from privsynth.models.family import prompt_positions
from privsynth.models.tokenizer import PublicTokenizer
from privsynth.models.transformer import TinyTransformerLM, get_preset
from torch import nn
from torch.nn import functional as F  # noqa: N812

__all__ = [
    "PretrainResult",
    "chunk_corpus",
    "pretrain",
    "read_public_corpus",
    "run_cli",
    "save_base",
]


@dataclass
class PretrainResult:
    """Weights and facts of a pretraining run."""

    weights: bytes
    model_config: dict[str, Any]
    provenance: dict[str, Any]


def chunk_corpus(
    texts: Iterable[str], tokenizer: PublicTokenizer, *, max_len: int
) -> list[list[int]]:
    """Lay public text out as ``BOS SEP text EOS`` sequences of at most ``max_len + 1`` ids.

    The empty control code (nothing between BOS and SEP) matches how unlabelled private records
    are laid out, so the base already knows the format the fine-tuning run uses. Long paragraphs
    are cut into windows; the first window keeps BOS so the model learns record starts.
    """
    body = max_len - 2
    out: list[list[int]] = []
    for text in texts:
        ids = tokenizer.encode(text)
        for start in range(0, max(len(ids), 1), body):
            piece = ids[start : start + body]
            if len(piece) < 4:
                continue
            tail = [tokenizer.eos_id] if start + body >= len(ids) else []
            out.append([tokenizer.bos_id, tokenizer.sep_id, *piece, *tail])
    return out


def _batches(
    seqs: Sequence[list[int]], batch_size: int, pad_id: int, rng: random.Random
) -> Iterable[torch.Tensor]:
    order = list(range(len(seqs)))
    rng.shuffle(order)
    # Sort within large buckets by length so each batch pads to little.
    bucket = batch_size * 50
    for b0 in range(0, len(order), bucket):
        chunk = sorted(order[b0 : b0 + bucket], key=lambda i: len(seqs[i]))
        batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        for idx in batches:
            yield nn.utils.rnn.pad_sequence(
                [torch.tensor(seqs[i]) for i in idx], batch_first=True, padding_value=pad_id
            )


def pretrain(
    texts: Sequence[str],
    *,
    tokenizer: PublicTokenizer,
    preset: str,
    minutes: float,
    corpus_name: str,
    corpus_sha256: str,
    licence: str,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
    holdout: float = 0.02,
    on_progress: Callable[[int, float, float], None] | None = None,
) -> PretrainResult:
    """Train on public text for a wall-clock budget with AdamW and a cosine schedule.

    Args:
        texts: Public corpus.
        tokenizer: The public tokenizer.
        preset: Architecture preset.
        minutes: Wall-clock budget; the schedule is sized from a measured step time.
        corpus_name: Human-readable corpus name, for the provenance.
        corpus_sha256: Hash of the corpus file, for the provenance.
        licence: Licence of the corpus.
        batch_size: Sequences per step.
        learning_rate: Peak learning rate.
        seed: Seed of initialisation and shuffling.
        holdout: Share of sequences kept out to report held-out perplexity.
        on_progress: Called with (step, loss, elapsed seconds).
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    cfg = get_preset(preset, vocab_size=tokenizer.vocab_size)
    seqs = chunk_corpus(texts, tokenizer, max_len=cfg.max_len)
    rng.shuffle(seqs)
    n_hold = max(1, int(len(seqs) * holdout))
    held, train = seqs[:n_hold], seqs[n_hold:]
    model = TinyTransformerLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    pad = tokenizer.pad_id
    budget_s = minutes * 60.0
    started = time.monotonic()
    step = 0
    total_steps: int | None = None
    warmup = 100
    loss_ema = math.nan
    model.train()
    done = False
    while not done:
        for batch in _batches(train, batch_size, pad, rng):
            elapsed = time.monotonic() - started
            if total_steps is None and step == 20:
                # Size the cosine schedule from the measured step time.
                total_steps = max(warmup + 1, int(budget_s / (elapsed / 20)))
            if (total_steps is not None and step >= total_steps) or elapsed > budget_s * 1.05:
                done = True
                break
            horizon = total_steps or 10**9
            lr_scale = (
                min(1.0, (step + 1) / warmup)
                * 0.5
                * (1 + math.cos(math.pi * min(1.0, step / horizon)))
            )
            for group in opt.param_groups:
                group["lr"] = learning_rate * max(lr_scale, 0.02)
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), ignore_index=pad
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            value = float(loss.detach())
            loss_ema = value if math.isnan(loss_ema) else 0.98 * loss_ema + 0.02 * value
            if on_progress is not None and step % 50 == 0:
                on_progress(step, loss_ema, time.monotonic() - started)
    held_ppl = evaluate_perplexity(model, held, pad)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    provenance = {
        "kind": "privsynth transformer, pretrained without DP on public data only",
        "preset": preset,
        "trained_on": corpus_name,
        "trained_on_sha256": corpus_sha256,
        "licence": licence,
        "private_data_used": False,
        "steps": step,
        "batch_size": batch_size,
        "minutes": round((time.monotonic() - started) / 60.0, 2),
        "heldout_perplexity": round(held_ppl, 2),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tokenizer_sha256": tokenizer.provenance.get("tokenizer_sha256", ""),
        "built_with": "privsynth pretrain",
    }
    return PretrainResult(
        weights=buffer.getvalue(), model_config=cfg.to_dict(), provenance=provenance
    )


@torch.inference_mode()
def evaluate_perplexity(
    model: nn.Module,
    seqs: Sequence[list[int]],
    pad_id: int,
    batch_size: int = 64,
    *,
    prompt_end: tuple[int, int] | None = None,
) -> float:
    """Token-level perplexity of ``model`` on ``seqs`` (targets it cannot emit are skipped).

    With ``prompt_end`` (a tokenizer's), only the text after each record's prompt is scored,
    as in DP training.
    """
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(seqs), batch_size):
        batch = nn.utils.rnn.pad_sequence(
            [torch.tensor(s) for s in seqs[i : i + batch_size]],
            batch_first=True,
            padding_value=pad_id,
        )
        logits = model(batch[:, :-1])
        # A model with a cut output vocabulary (hf_lm) is scored on the tokens it can emit.
        targets = batch[:, 1:].masked_fill(batch[:, 1:] >= logits.shape[-1], pad_id)
        if prompt_end is not None:
            targets = targets.masked_fill(prompt_positions(batch, prompt_end), pad_id)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=pad_id,
            reduction="sum",
        )
        total += float(loss)
        count += int((targets != pad_id).sum())
    model.train()
    return math.exp(total / max(count, 1))


def save_base(result: PretrainResult, out_dir: Path) -> None:
    """Write a base model directory: ``weights.pt``, ``config.json``, ``provenance.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "weights.pt").write_bytes(result.weights)
    prov = dict(result.provenance)
    prov["weights_sha256"] = hashlib.sha256(result.weights).hexdigest()
    (out_dir / "config.json").write_text(json.dumps(result.model_config, indent=2) + "\n")
    (out_dir / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")


PUBLIC_CORPUS = "jane_austen_paragraphs.jsonl.gz"
PUBLIC_CORPUS_NAME = "Jane Austen novels, paragraphs (Project Gutenberg, public domain)"


def read_public_corpus(path: Path | None = None) -> tuple[list[str], str, str]:
    """Texts, display name and SHA-256 (of the uncompressed JSONL) of a public corpus.

    Without a path, the Austen paragraphs shipped in ``models/assets/corpora`` are used.
    """
    import gzip
    from importlib import resources

    if path is None:
        ref = resources.files("privsynth.models") / "assets" / "corpora" / PUBLIC_CORPUS
        raw = gzip.decompress(ref.read_bytes())
        name = PUBLIC_CORPUS_NAME
    else:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        name = str(path.name)
    texts = []
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            text = str(obj["text"]).strip()
            if len(text) >= 20:
                texts.append(text)
    return texts, name, hashlib.sha256(raw).hexdigest()


def run_cli(args: Any) -> int:
    """``privsynth pretrain``: pretrain a base on a public corpus and write it to a directory."""
    from privsynth.models.tokenizer import load_tokenizer

    torch.set_num_threads(args.threads)
    texts, name, digest = read_public_corpus(Path(args.corpus) if args.corpus else None)
    print(
        f"pretraining preset {args.preset!r} on {name} ({len(texts)} texts) for "
        f"{args.minutes:g} min",
        flush=True,
    )

    def progress(step: int, loss: float, elapsed: float) -> None:
        print(f"  step {step} loss {loss:.3f} ({elapsed:.0f}s)", flush=True)

    result = pretrain(
        texts,
        tokenizer=load_tokenizer(),
        preset=args.preset,
        minutes=args.minutes,
        corpus_name=name,
        corpus_sha256=digest,
        licence=args.licence,
        on_progress=progress,
    )
    save_base(result, Path(args.out))
    print(
        f"wrote {args.out}: {result.provenance['steps']} steps, held-out perplexity "
        f"{result.provenance['heldout_perplexity']}"
    )
    return 0
