"""Evaluation sets whose PII nobody on this team generated (issue 13).

``presidio_evaluator_set``: sentences from Microsoft's presidio-evaluator data generator
(presidio-research, MIT code and templates; its 3,000 fake identities come from
FakeNameGenerator, CC BY-SA 3.0 US, so the set is generated at run time and never committed).
Its names are not Faker's, which privsynth's name lexicon is built from, so PERSON recall on it
is not inflated by the lexicon. Gold spans are the generator's own offsets. The set is frozen by
its seed: the person table is built with Python's unseeded ``random`` and dates follow the
clock, so both are pinned here (``random.seed``, ``freezegun``), and a digest of the texts is
printed to show two runs scored the same set.

Install for the benchmark only (not a project dependency; ``--no-deps`` keeps its transformers
and plotly requirements out of the environment)::

    .venv/bin/pip install --no-deps presidio-evaluator==0.3.2
    .venv/bin/pip install pandas freezegun

Entity types map onto the benchmark's (``GPE`` and ``ZIP_CODE`` count as LOCATION,
``DOMAIN_NAME`` as URL); types the benchmark has no row for (ORGANIZATION, TITLE, AGE, NRP,
US_DRIVER_LICENSE) are dropped and counted.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from pii_eval_data import Example, Span

TYPE_MAP = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "GPE": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "DATE_TIME": "DATE_TIME",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "DOMAIN_NAME": "URL",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
}


def presidio_evaluator_set(n: int, seed: int) -> tuple[list[Example], str, Counter[str]]:
    """``n`` generated sentences with gold spans, their digest, and the dropped type counts.

    Raises:
        SystemExit: presidio-evaluator (or freezegun) is not installed; says how to install.
    """
    try:
        from freezegun import freeze_time
        from presidio_evaluator.data_generator import PresidioSentenceFaker
    except ImportError as exc:
        raise SystemExit(
            f"--corpus presidio-evaluator needs {exc.name}: .venv/bin/pip install --no-deps "
            "presidio-evaluator==0.3.2 && .venv/bin/pip install pandas freezegun"
        ) from None
    with freeze_time("2024-01-01 00:00:00"):
        random.seed(seed)
        faker = PresidioSentenceFaker(locale="en_US", lower_case_ratio=0.05, random_seed=seed)
        records = faker.generate_new_fake_sentences(n)
    dropped: Counter[str] = Counter()
    examples = []
    for i, rec in enumerate(records):
        spans = []
        for s in rec.spans:
            mapped = TYPE_MAP.get(s.entity_type)
            if mapped is None:
                dropped[s.entity_type] += 1
                continue
            spans.append(Span(s.start_position, s.end_position, mapped))
        examples.append(
            Example(
                text=rec.full_text,
                spans=tuple(spans),
                domain="presidio-evaluator",
                template_id=f"pe-{rec.template_id if rec.template_id is not None else i}",
                split="heldout",  # never tuned on
            )
        )
    digest = hashlib.sha256("\x00".join(e.text for e in examples).encode()).hexdigest()[:16]
    return examples, digest, dropped
