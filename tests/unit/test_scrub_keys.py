"""Keyed strategies on the server: per-dataset keys from the master secret, never stored.

The upload path runs two spawned scrub workers (as the server does by default), so the
consistency checks cross process boundaries. Values are synthetic test values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from privsynth.client.pb import scrubbing_pb2
from privsynth.server.api.services.scrubbing import ScrubbingServicer
from privsynth.server.config import Settings
from privsynth.server.db import DatasetRow
from privsynth.server.errors import FailedPrecondition
from privsynth.server.runtime import Runtime
from privsynth.server.scrubbing.ingest import DatasetSpec, IncomingRecord, ingest, scrub_key
from privsynth.server.scrubbing.recognizers import luhn_valid
from privsynth.server.scrubbing.scrubber import Scrubber
from privsynth.server.scrubbing.strategies import ScrubPolicy, StrategyConfigError, dataset_key
from pydantic import SecretStr, ValidationError

MASTER = "test-master-secret-0123456789abcdef"
KEYED_YAML = """\
default: placeholder
entities:
  PERSON: pseudonym
  EMAIL_ADDRESS: pseudonym
  PHONE_NUMBER: pseudonym
  CREDIT_CARD: pseudonym
  IBAN_CODE: pseudonym
  IP_ADDRESS: pseudonym
  US_SSN: {strategy: hash, length: 12}
"""
RECORDS = [
    "Dear Zebulon Quagmire, we called (212) 555-0187 and wrote to zq@quagmire-mail.net.",
    "Zebulon Quagmire paid with 4111 1111 1111 1111 from 10.1.2.3.",
    "Refund to DE89 3704 0044 0532 0130 00 for zq@quagmire-mail.net, SSN 536-22-8726.",
    "Call (212) 555-0187 back; SSN 536-22-8726 again.",
] * 3


@pytest.fixture(scope="module")
def keyed_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "scrub.yaml"
    path.write_text(KEYED_YAML)
    return path


def _iban_ok(iban: str) -> bool:
    compact = iban.replace(" ", "")
    return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1


# -- the key --------------------------------------------------------------------------------


def test_dataset_key_is_deterministic_and_per_dataset() -> None:
    master = MASTER.encode()
    assert dataset_key(master, "abc") == dataset_key(master, "abc")
    assert dataset_key(master, "abc") != dataset_key(master, "abd")
    assert dataset_key(master, "abc") != dataset_key(b"another-master-secret-xyz", "abc")
    assert len(dataset_key(master, "abc")) == 32
    with pytest.raises(StrategyConfigError, match="at least 16 bytes"):
        dataset_key(b"short", "abc")


# -- start-up checks ------------------------------------------------------------------------


def test_keyed_policy_without_secret_refuses_to_start(keyed_policy: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="PRIVSYNTH_SCRUB_SECRET"):
        Settings(data_dir=tmp_path, scrub_policy=keyed_policy, scrub_secret="")
    with pytest.raises(ValidationError, match="at least 16 bytes"):
        Settings(data_dir=tmp_path, scrub_policy=keyed_policy, scrub_secret="short")
    Settings(data_dir=tmp_path)  # placeholders need no secret


def test_secret_from_file_and_never_printed(keyed_policy: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "scrub-secret"
    secret_file.write_text(MASTER + "\n")
    settings = Settings(data_dir=tmp_path, scrub_policy=keyed_policy, scrub_secret_file=secret_file)
    assert settings.scrub_secret.get_secret_value() == MASTER
    assert MASTER not in repr(settings) and MASTER not in str(settings.model_dump())
    with pytest.raises(ValidationError, match="cannot read PRIVSYNTH_SCRUB_SECRET_FILE"):
        Settings(data_dir=tmp_path, scrub_secret_file=tmp_path / "missing")


def test_secret_from_environment(
    keyed_policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRIVSYNTH_SCRUB_SECRET", MASTER)
    monkeypatch.setenv("PRIVSYNTH_SCRUB_POLICY", str(keyed_policy))
    assert Settings(data_dir=tmp_path).scrub_secret.get_secret_value() == MASTER


# -- format-preserving surrogates in a full scrub ---------------------------------------------


def test_surrogates_keep_their_format(keyed_policy: Path) -> None:
    from privsynth.server.scrubbing.strategies import load_policy

    scrubber = Scrubber(policy=load_policy(keyed_policy), residual_check=True)
    scrubber.load()
    out = scrubber.scrub_batch(RECORDS[:4], key=b"k" * 32)
    joined = "\n".join(r.text for r in out)
    for original in ("Quagmire", "555-0187", "quagmire-mail", "4111", "DE89", "10.1.2.3", "8726"):
        assert original not in joined
    phones = re.findall(r"\(\d{3}\) \d{3}-\d{4}", joined)
    assert len(phones) == 2 and phones[0] == phones[1]  # a phone stays a phone, consistently
    emails = re.findall(r"[a-z.]+\d*@example\.(?:com|net|org)", joined)
    assert len(emails) == 2 and emails[0] == emails[1]
    (card,) = re.findall(r"with (\d{4} \d{4} \d{4} \d{4}) from", joined)
    assert luhn_valid(card.replace(" ", ""))
    (iban,) = re.findall(r"DE\d\d(?: \d{4}){4} \d\d", joined)
    assert _iban_ok(iban)
    assert re.search(r"from (192\.0\.2|198\.51\.100|203\.0\.113)\.\d+\.", joined)
    hashes = re.findall(r"SSN ([0-9a-f]{12})\b", joined)
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    # Surrogates are the scrubber's own spans: the residual check does not count them.
    assert all(r.residual_counts == {} for r in out)
    assert out[0].strategy_counts == {"pseudonym": 3}
    assert out[3].strategy_counts == {"pseudonym": 1, "hash": 1}


# -- uploads through two worker processes, and ScrubText ---------------------------------------


@pytest.fixture(scope="module")
def runtime(keyed_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("keyed-data"),
        scrub_policy=keyed_policy,
        scrub_secret=MASTER,
        scrub_workers=2,
        scrub_batch_size=1,  # one record per chunk: a dataset's records spread over both workers
    )
    rt = Runtime.create(settings)
    rt.scrubber.load()
    rt.ready.set()
    yield rt
    rt.close()


def _upload(rt: Runtime) -> tuple[DatasetRow, list[str]]:
    row = ingest(rt, DatasetSpec("keyed"), [IncomingRecord(text=t.encode()) for t in RECORDS])
    shard = rt.store.get(row.shard_path, sha256=row.content_sha256)
    return row, [json.loads(line)["text"] for line in shard.decode().splitlines()]


def _surrogates(texts: list[str]) -> dict[str, set[str]]:
    return {
        "name": {t.split("Dear ")[1].split(",")[0] for t in texts if "Dear " in t}
        | {t.split(" paid")[0] for t in texts if " paid" in t},
        "email": {m for t in texts for m in re.findall(r"\S+@example\.(?:com|net|org)", t)},
        "phone": {m for t in texts for m in re.findall(r"\(\d{3}\) \d{3}-\d{4}", t)},
        "ssn": {m for t in texts for m in re.findall(r"SSN ([0-9a-f]{12})\b", t)},
    }


def test_uploads_use_a_per_dataset_key(runtime: Runtime) -> None:
    row1, texts1 = _upload(runtime)
    _, texts2 = _upload(runtime)
    s1, s2 = _surrogates(texts1), _surrogates(texts2)
    for kind in ("name", "email", "phone", "ssn"):
        # Same value, same surrogate within a dataset (12 records over two workers) ...
        assert len(s1[kind]) == 1 and len(s2[kind]) == 1, kind
        # ... and a different one in another dataset.
        assert s1[kind] != s2[kind], kind
    assert not any("Quagmire" in t or "555-0187" in t for t in texts1 + texts2)
    report = row1.scrub_report
    assert report["entity_counts"]["PERSON"] == 6 and report["entity_counts"]["US_SSN"] == 6
    assert report["strategy_counts"] == {"hash": 6, "pseudonym": 27}
    assert report["residual_count"] == 0
    # The key is derived, never stored: not in the report, the row or the shard.
    key = dataset_key(MASTER.encode(), row1.id)
    stored = json.dumps(report) + repr(row1.__dict__) + "\n".join(texts1)
    assert key.hex() not in stored and MASTER not in stored
    assert scrub_key(runtime, row1.id) == key


def test_upload_without_secret_is_a_failed_precondition(runtime: Runtime) -> None:
    saved = runtime.settings.scrub_secret
    runtime.settings.scrub_secret = SecretStr("")
    try:
        with pytest.raises(FailedPrecondition, match="PRIVSYNTH_SCRUB_SECRET"):
            ingest(runtime, DatasetSpec("x"), [IncomingRecord(text=b"hello")])
    finally:
        runtime.settings.scrub_secret = saved


def test_scrub_text_is_consistent_within_a_request_only(runtime: Runtime) -> None:
    servicer = ScrubbingServicer(runtime)
    text = "Zebulon Quagmire wrote zq@quagmire-mail.net; reply to zq@quagmire-mail.net."
    req = scrubbing_pb2.ScrubTextRequest(text=text)
    # A stand-in for the call's context: the servicer only registers its end-of-call callback.
    context = SimpleNamespace(add_callback=lambda _callback: True)
    one = servicer.ScrubText(req, context)  # type: ignore[arg-type]
    two = servicer.ScrubText(req, context)  # type: ignore[arg-type]
    mails = re.findall(r"\S+@example\.(?:com|net|org)", one.text)
    assert len(mails) == 2 and mails[0] == mails[1]
    assert "Quagmire" not in one.text and one.entity_counts["EMAIL_ADDRESS"] == 2
    assert one.text != two.text  # a fresh key per request: no linkage across requests


def test_policy_without_keyed_strategies_needs_no_key() -> None:
    pol = ScrubPolicy.from_mapping({"entities": {"US_SSN": "redact"}})
    assert not pol.needs_key
