"""The Faker postal-layout screen (``pii_quality.py --corpus faker-addresses``) is well formed.

A tuning screen is only as good as its gold: every span must be exactly the field Faker wrote
there, and a seed must give the same set on every machine, or two runs compare nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def screen() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # pii_independent imports its sibling pii_eval_data
    try:
        spec = importlib.util.spec_from_file_location(
            "pii_independent", BENCHMARKS / "pii_independent.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Faker warns about deprecated locales
def test_gold_spans_are_the_written_fields_and_a_seed_fixes_the_set(screen: ModuleType) -> None:
    examples, digest, layouts = screen.faker_address_set(160, 7)
    assert len(examples) == 160 and len(layouts) >= 40  # one draw per distinct layout
    kinds = set()
    for ex in examples:
        ends = 0
        for span in sorted(ex.spans, key=lambda s: s.start):
            value = ex.text[span.start : span.end]
            assert value.strip() and span.start >= ends  # inside the text, no overlap
            ends = span.end
            kinds.add(span.entity_type)
        # Every address sits in one of the three contexts, each with its street line.
        assert any(s.entity_type == "STREET_ADDRESS" for s in ex.spans)
    assert kinds == {"PERSON", "STREET_ADDRESS", "POSTCODE", "LOCATION"}
    assert screen.faker_address_set(160, 7)[1] == digest
    assert screen.faker_address_set(160, 42)[1] != digest
