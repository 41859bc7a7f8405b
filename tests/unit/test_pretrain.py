"""Pretraining on public text and starting DP fine-tuning from a base."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import fortune_examples
from privsynth.models.dp_train import DPConfig, train_dp
from privsynth.models.presets import PRESETS, base_available, load_base
from privsynth.models.pretrain import chunk_corpus, pretrain, read_public_corpus, save_base
from privsynth.models.tokenizer import load_tokenizer


def test_chunks_follow_the_record_layout() -> None:
    tok = load_tokenizer()
    long_text = " ".join(["word"] * 300)
    seqs = chunk_corpus(["A short public sentence here.", long_text], tok, max_len=32)
    assert all(len(s) <= 33 for s in seqs)
    assert all(s[:2] == [tok.bos_id, tok.sep_id] for s in seqs)
    assert seqs[0][-1] == tok.eos_id


def test_bundled_public_corpus_matches_tokenizer_provenance() -> None:
    texts, name, digest = read_public_corpus()
    assert len(texts) > 5000
    assert "Austen" in name
    assert digest == load_tokenizer().provenance["trained_on_sha256"]


def test_pretrain_then_dp_finetune_from_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok = load_tokenizer()
    texts, name, digest = read_public_corpus()
    result = pretrain(
        texts[:300],
        tokenizer=tok,
        preset="tiny",
        minutes=0.05,
        corpus_name=name,
        corpus_sha256=digest,
        licence="public domain",
    )
    assert result.provenance["private_data_used"] is False
    assert result.provenance["steps"] > 0
    save_base(result, tmp_path / "tiny-base")
    assert base_available(str(tmp_path / "tiny-base"))
    base = load_base(str(tmp_path / "tiny-base"))
    assert base.provenance["trained_on_sha256"] == digest

    from privsynth.models.presets import TrainingPreset

    monkeypatch.setitem(
        PRESETS, "tiny-based", TrainingPreset("tiny-based", "tiny", str(tmp_path / "tiny-base"), "")
    )
    examples = fortune_examples(40)
    res = train_dp(
        examples,
        config=DPConfig(target_epsilon=2.0, target_delta=1e-5, epochs=1, preset="tiny-based"),
        tokenizer=tok,
    )
    assert res.card["base_model"]["trained_on_sha256"] == digest
    assert res.epsilon_spent <= 2.0 + 1e-6


def test_corrupt_base_is_refused(tmp_path: Path) -> None:
    tok = load_tokenizer()
    result = pretrain(
        ["Some public text to learn from."] * 50,
        tokenizer=tok,
        preset="tiny",
        minutes=0.01,
        corpus_name="t",
        corpus_sha256="0",
        licence="public domain",
    )
    save_base(result, tmp_path / "b")
    (tmp_path / "b" / "weights.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_base(str(tmp_path / "b"))
