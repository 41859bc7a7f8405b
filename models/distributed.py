r"""Data-parallel DP training across processes: ``torchrun -m privsynth.models.distributed``.

Each process (gloo on CPU, nccl on GPU) runs :func:`~privsynth.models.dp_train.train_dp` on
the same examples; Opacus' distributed support shards Poisson sampling and noise so that the
guarantee and its accounting equal a single process with the same sampling rate and steps.
Rank 0 writes the weights and the model card. On Kubernetes this runs as an indexed Job (see
``helm/privsynth/templates/training-job.yaml``).

    torchrun --nproc_per_node 2 -m privsynth.models.distributed \\
        --data scrubbed.jsonl --epsilon 8 --delta 1e-6 --epochs 3 --out run/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from privsynth.models.dp_train import DPConfig, Example, train_dp
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.presets import register_local_bases

__all__ = ["main"]


def _examples(path: Path) -> list[Example]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                out.append(Example(text=obj["text"], label=obj.get("label"), user=obj.get("user")))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of one rank (torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT)."""
    parser = argparse.ArgumentParser(description="distributed DP training (one rank)")
    parser.add_argument("--data", required=True, help="scrubbed JSONL shard (text, label)")
    parser.add_argument("--epsilon", type=float, required=True)
    parser.add_argument("--delta", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--preset", default="small")
    parser.add_argument(
        "--model-dir", default="", help="directory of local HF models (presets hf:<name>)"
    )
    parser.add_argument("--noise-multiplier", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True, help="directory for weights.pt and card.json")
    args = parser.parse_args(argv)
    if args.model_dir:
        register_local_bases(Path(args.model_dir))

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)
    torch.set_num_threads(args.threads)
    try:
        result = train_dp(
            _examples(Path(args.data)),
            config=DPConfig.for_preset(
                args.preset,
                target_epsilon=args.epsilon,
                target_delta=args.delta,
                epochs=args.epochs,
                noise_multiplier=args.noise_multiplier,
            ),
            tokenizer=tokenizer_for_preset(args.preset),
        )
        if torch.distributed.get_rank() == 0:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "weights.pt").write_bytes(result.weights)
            card = dict(result.card)
            card["backend"] = backend
            (out / "card.json").write_text(json.dumps(card, indent=2, default=str))
            (out / "config.json").write_text(json.dumps(result.model_config))
    finally:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
