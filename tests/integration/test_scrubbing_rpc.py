"""AnalyzeText / ScrubText: ad hoc scrubbing over gRPC, size-limited, never echoed in errors."""

from __future__ import annotations

import grpc
import pytest
from corpus import SECRET_EMAIL, SECRET_NAME
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError


def test_analyze_and_scrub_text(client: PrivsynthClient) -> None:
    text = f"Hello, I am {SECRET_NAME}; write to {SECRET_EMAIL} please."
    spans = client.analyze_text(text).spans
    found = {(s.entity_type, text[s.start : s.end]) for s in spans}
    assert ("EMAIL_ADDRESS", SECRET_EMAIL) in found
    assert any(t == "PERSON" and SECRET_NAME in v for t, v in found)
    scrubbed = client.scrub_text(text)
    assert SECRET_EMAIL not in scrubbed.text and SECRET_NAME not in scrubbed.text
    assert scrubbed.entity_counts["EMAIL_ADDRESS"] == 1


def test_oversized_and_empty_text_are_refused(server: object, client: PrivsynthClient) -> None:
    limit = server.settings.max_record_bytes  # type: ignore[attr-defined]
    with pytest.raises(PrivsynthClientError) as exc:
        client.scrub_text(SECRET_NAME + "x" * limit)
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(limit) in exc.value.message
    assert SECRET_NAME not in str(exc.value)
    with pytest.raises(PrivsynthClientError) as exc:
        client.analyze_text("   ")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
