"""The public tokenizer: a byte-level BPE learned once from public-domain prose.

A vocabulary learned from the private corpus would leak its rare strings (names, codes) through
the token table itself, so privsynth never fits a tokenizer on uploaded data. The tokenizer is
trained offline by :func:`build_tokenizer` on a public corpus and shipped as a package asset,
with a provenance record that every model card repeats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SEP",
    "PublicTokenizer",
    "build_tokenizer",
    "load_tokenizer",
    "sha256_file",
]

PAD = "<|pad|>"
BOS = "<|bos|>"
EOS = "<|eos|>"
SEP = "<|sep|>"
SPECIAL_TOKENS = (PAD, BOS, EOS, SEP)

_ASSET = "tokenizer.json"
_PROVENANCE = "tokenizer.provenance.json"


@dataclass(frozen=True)
class PublicTokenizer:
    """A loaded tokenizer plus where it came from.

    Attributes:
        backend: The ``tokenizers.Tokenizer`` doing the work.
        provenance: Source corpus, licence, hash and vocabulary size, copied onto model cards.
    """

    backend: Any
    provenance: dict[str, Any]

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included."""
        return int(self.backend.get_vocab_size())

    def token_id(self, token: str) -> int:
        """Id of a special token.

        Raises:
            KeyError: If the token is not in the vocabulary.
        """
        tid = self.backend.token_to_id(token)
        if tid is None:
            raise KeyError(f"token {token!r} is not in the vocabulary")
        return int(tid)

    @property
    def pad_id(self) -> int:
        """Id of the padding token."""
        return self.token_id(PAD)

    @property
    def bos_id(self) -> int:
        """Id of the beginning-of-record token."""
        return self.token_id(BOS)

    @property
    def eos_id(self) -> int:
        """Id of the end-of-record token."""
        return self.token_id(EOS)

    @property
    def sep_id(self) -> int:
        """Id of the token between a record's control code (label) and its text."""
        return self.token_id(SEP)

    def prompt(self, label: str | None) -> list[int]:
        """``BOS label SEP`` (``BOS SEP`` without a label): what precedes a record's text."""
        return [self.bos_id, *(self.encode(label) if label else []), self.sep_id]

    @property
    def prompt_end(self) -> tuple[int, int]:
        """The text starts right after the first SEP."""
        return self.sep_id, 1

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of several texts (parallel in the Rust backend)."""
        return [
            list(e.ids) for e in self.backend.encode_batch(list(texts), add_special_tokens=False)
        ]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens dropped."""
        return str(self.backend.decode(list(ids), skip_special_tokens=True))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (provenance records of public assets)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_tokenizer(
    corpus: Path,
    out_dir: Path,
    *,
    vocab_size: int = 4096,
    source_name: str,
    licence: str,
) -> Path:
    """Train the byte-level BPE on a public JSONL corpus and write it with its provenance.

    Args:
        corpus: JSON-lines file with a ``text`` field per line; must be public data.
        out_dir: Where ``tokenizer.json`` and ``tokenizer.provenance.json`` are written.
        vocab_size: Target vocabulary size, special tokens included.
        source_name: Human-readable name of the corpus, recorded in the provenance.
        licence: Licence of the corpus, recorded in the provenance.

    Returns:
        Path of the written ``tokenizer.json``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def texts() -> Iterable[str]:
        with corpus.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield str(json.loads(line)["text"])

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts(), trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / _ASSET
    tok.save(str(path))
    provenance = {
        "kind": "byte-level BPE",
        "vocab_size": tok.get_vocab_size(),
        "trained_on": source_name,
        "trained_on_sha256": sha256_file(corpus),
        "licence": licence,
        "private_data_used": False,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tokenizer_sha256": sha256_file(path),
        "built_with": "python -m privsynth.models.tokenizer CORPUS",
    }
    (out_dir / _PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return path


@lru_cache(maxsize=1)
def load_tokenizer() -> PublicTokenizer:
    """Load the tokenizer shipped with the package (cached: it is immutable)."""
    from tokenizers import Tokenizer

    assets = resources.files("privsynth.models") / "assets"
    backend = Tokenizer.from_str((assets / _ASSET).read_text(encoding="utf-8"))
    provenance = json.loads((assets / _PROVENANCE).read_text(encoding="utf-8"))
    return PublicTokenizer(backend=backend, provenance=provenance)


if __name__ == "__main__":  # pragma: no cover - offline asset build
    import sys

    build_tokenizer(
        Path(sys.argv[1]),
        Path(__file__).parent / "assets",
        source_name="Jane Austen novels, paragraphs (Project Gutenberg, public domain)",
        licence="public domain",
    )
