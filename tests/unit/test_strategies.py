"""Replacement strategies: config validation, mask, keyed hash, consistent pseudonyms.

Pure Python (no spaCy): the values are synthetic test values, never real PII.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from privsynth.server.scrubbing.recognizers import luhn_valid
from privsynth.server.scrubbing.strategies import (
    Replacer,
    ScrubPolicy,
    StrategyConfigError,
    load_policy,
)

KEY = b"k" * 32


def policy(**entities: object) -> ScrubPolicy:
    return ScrubPolicy.from_mapping({"default": "pseudonym", "entities": entities})


def test_packaged_policy_is_placeholders() -> None:
    pol = load_policy()
    assert pol.describe() == "placeholder"
    assert not pol.needs_key
    Replacer(pol)  # no key needed


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"default": "scramble"}, "unknown strategy 'scramble'"),
        ({"entities": {"PERSON": "obfuscate"}}, "unknown strategy 'obfuscate'"),
        ({"entities": {"PERSON": {"strategy": "mask", "width": 3}}}, "no option 'width'"),
        ({"entities": {"PERSON": {"strategy": "mask", "keep_last": "4"}}}, "must be int"),
        ({"entities": {"PERSON": {"strategy": "hash", "length": 4}}}, "8..64"),
        ({"entities": {"person": "redact"}}, "upper-case"),
        ({"strategies": {}}, "unknown key"),
        (["placeholder"], "expected a mapping"),
    ],
)
def test_bad_config_fails_clearly(doc: object, message: str) -> None:
    with pytest.raises(StrategyConfigError, match=re.escape(message)):
        ScrubPolicy.from_mapping(doc, "scrub.yaml")


def test_unknown_entity_type_is_refused() -> None:
    pol = ScrubPolicy.from_mapping({"entities": {"EMAIL": "redact"}}, "scrub.yaml")
    with pytest.raises(StrategyConfigError, match=r"unknown entity type.*EMAIL"):
        pol.validate_entities({"EMAIL_ADDRESS", "PERSON"})


def test_yaml_file(tmp_path: Path) -> None:
    conf = tmp_path / "scrub.yaml"
    conf.write_text(
        "default: placeholder\nentities:\n  CREDIT_CARD: {strategy: mask, keep_last: 4}\n"
    )
    pol = load_policy(conf)
    assert pol.strategy_for("CREDIT_CARD").keep_last == 4
    assert pol.strategy_for("PERSON").name == "placeholder"
    conf.write_text("default: [unclosed\n")
    with pytest.raises(StrategyConfigError, match="cannot read"):
        load_policy(conf)


def test_keyed_strategies_need_a_key() -> None:
    with pytest.raises(StrategyConfigError, match="per-dataset key"):
        Replacer(policy())
    with pytest.raises(StrategyConfigError, match="at least 16 bytes"):
        Replacer(policy(), key=b"short")


def test_mask() -> None:
    assert Replacer.mask("4111 1111 1111 1111", keep_last=4) == "**** **** **** 1111"
    assert Replacer.mask("ab-12", char="#") == "##-##"


def test_keyed_hash_is_stable_per_key_and_normalised() -> None:
    r1, r2 = Replacer(policy(), key=KEY), Replacer(policy(), key=b"x" * 32)
    h = r1.keyed_hash("PHONE_NUMBER", "212-555-0199")
    assert h == r1.keyed_hash("PHONE_NUMBER", "(212) 555 0199")
    assert re.fullmatch(r"[0-9a-f]{16}", h)
    assert h != r2.keyed_hash("PHONE_NUMBER", "212-555-0199")
    assert len(r1.keyed_hash("PERSON", "Zed", 12)) == 12


def test_pseudonyms_are_consistent_and_keyed() -> None:
    r = Replacer(policy(), key=KEY)
    a = r.pseudonym("PERSON", "Zebulon Quagmire")
    assert a == r.pseudonym("PERSON", "zebulon  QUAGMIRE".title())
    assert a == Replacer(policy(), key=KEY).pseudonym("PERSON", "Zebulon Quagmire")
    assert a != Replacer(policy(), key=b"y" * 32).pseudonym("PERSON", "Zebulon Quagmire")
    assert len(a.split()) == 2 and a != "Zebulon Quagmire"
    assert r.pseudonym("PERSON", "zebulon quagmire").islower()


def test_pseudonyms_never_return_the_value() -> None:
    # A one-digit value has ten shapes and a fictional US line one hundred: over many keys
    # a single draw would hand the value back; the redraw never does.
    for i in range(300):
        r = Replacer(policy(), key=i.to_bytes(4, "big") * 8)
        assert r.pseudonym("ACCOUNT_NUMBER", "7") != "7"
        assert "555-0187" not in r.pseudonym("PHONE_NUMBER", "(212) 555-0187")


def test_pseudonyms_preserve_format() -> None:
    r = Replacer(policy(), key=KEY)
    email = r.pseudonym("EMAIL_ADDRESS", "zq@corp.test")
    assert re.fullmatch(r"[a-z]+\.[a-z]+\d*@example\.(com|net|org)", email)
    phone = r.pseudonym("PHONE_NUMBER", "(212) 555-0199 ext. 12")
    assert re.fullmatch(r"\([2-9]\d\d\) 555-01\d\d ext\. \d\d", phone)
    assert re.fullmatch(r"\+1-[2-9]\d\d-555-01\d\d", r.pseudonym("PHONE_NUMBER", "+1-415-867-5309"))
    intl = r.pseudonym("PHONE_NUMBER", "+44 20 7946 0958")
    assert re.fullmatch(r"\+44 \d\d \d{4} \d{4}", intl)
    card = r.pseudonym("CREDIT_CARD", "4111 1111 1111 1111")
    assert re.fullmatch(r"4\d{3} \d{4} \d{4} \d{4}", card) and luhn_valid(card.replace(" ", ""))
    iban = r.pseudonym("IBAN_CODE", "DE89 3704 0044 0532 0130 00")
    compact = iban.replace(" ", "")
    assert compact.startswith("DE") and len(compact) == 22
    assert int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1
    assert re.fullmatch(
        r"(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+", r.pseudonym("IP_ADDRESS", "10.1.2.3")
    )
    assert r.pseudonym("IP_ADDRESS", "fe80::1").startswith("2001:db8::")
    assert re.fullmatch(
        r"https://example\.(com|net|org)/[0-9a-f]{8}", r.pseudonym("URL", "https://shop.test/a?b=1")
    )
    assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", r.pseudonym("US_SSN", "078-05-1120"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r.pseudonym("DATE_TIME", "1987-03-04"))
    acct = r.pseudonym("ACCOUNT_NUMBER", "QX1234-z")
    assert re.fullmatch(r"[A-Z]{2}\d{4}-[a-z]", acct)


def test_operators_cover_each_strategy() -> None:
    pol = ScrubPolicy.from_mapping(
        {
            "default": "placeholder",
            "entities": {
                "US_SSN": "redact",
                "CREDIT_CARD": {"strategy": "mask", "keep_last": 4},
                "PERSON": "pseudonym",
                "EMAIL_ADDRESS": "hash",
            },
        }
    )
    ops = Replacer(pol, key=KEY).operators(
        ["US_SSN", "CREDIT_CARD", "PERSON", "EMAIL_ADDRESS", "URL"]
    )
    assert ops["US_SSN"].operator_name == "redact"
    assert ops["URL"].operator_name == "replace"
    assert ops["CREDIT_CARD"].params["lambda"]("4111-1111-1111-1111") == "****-****-****-1111"
    assert re.fullmatch(r"[0-9a-f]{16}", ops["EMAIL_ADDRESS"].params["lambda"]("a@b.test"))
    assert pol.describe().startswith("placeholder; CREDIT_CARD=mask")


@pytest.mark.parametrize("strategy", ["placeholder", "redact", "mask", "hash", "pseudonym"])
def test_replace_writes_what_the_anonymizer_writes(strategy: str) -> None:
    """Values replaced without the analyzer (mail headers) match those the anonymizer replaces."""
    from presidio_analyzer import RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

    replacer = Replacer(ScrubPolicy.from_mapping({"default": strategy}), KEY)
    text = "Ask Ann Example"
    spans = [RecognizerResult("PERSON", 4, 15, 0.9)]
    out = AnonymizerEngine().anonymize(  # type: ignore[no-untyped-call]
        text=text, analyzer_results=spans, operators=replacer.operators({"PERSON"})
    )
    assert out.text == "Ask " + replacer.replace("PERSON", "Ann Example")
