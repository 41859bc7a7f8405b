"""The shipped tokenizer is public and round-trips text."""

from __future__ import annotations

from privsynth.models.tokenizer import BOS, EOS, PAD, SEP, load_tokenizer


def test_provenance_declares_public_training_data() -> None:
    tok = load_tokenizer()
    prov = tok.provenance
    assert prov["private_data_used"] is False
    assert prov["licence"] == "public domain"
    assert prov["vocab_size"] == tok.vocab_size == 4096
    assert len(prov["trained_on_sha256"]) == 64


def test_round_trip_and_special_tokens() -> None:
    tok = load_tokenizer()
    text = "Dear <PERSON>, your ticket #4411 is closed. Ünïcödé works too."
    assert tok.decode(tok.encode(text)) == text
    ids = {tok.token_id(t) for t in (PAD, BOS, EOS, SEP)}
    assert len(ids) == 4
    assert tok.decode([tok.bos_id, *tok.encode("hi"), tok.eos_id]) == "hi"
