"""Classifier-free guidance through the real gRPC server, client and CLI: validated, seeded,
applied to a given label and to labels drawn from the model's mix."""

from __future__ import annotations

import json
import math

import grpc
import pytest
from corpus import fortunes
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError
from privsynth.client.pb import training_pb2

MIX = {"politics": 0.5, "computers": 0.5}


@pytest.fixture(scope="module")
def model(server: object) -> str:
    """A tiny model trained on labelled fortunes, with a declared public label mix."""
    with PrivsynthClient(f"127.0.0.1:{server.port}", stream_timeout=300) as c:  # type: ignore[attr-defined]
        ds = c.upload_dataset(fortunes(60), display_name="guidance", epsilon_cap=10)
        job = c.create_training_job(
            ds.name,
            target_epsilon=4.0,
            epochs=1,
            preset="tiny",
            label_distribution="public",
            public_label_weights=MIX,
        )
        final = list(c.watch_training_job(job.name))[-1]
        assert final.state == training_pb2.JOB_STATE_SUCCEEDED, final.error_message
        return str(final.model)


def _texts(client: PrivsynthClient, model: str, **kwargs: object) -> list[tuple[str, str]]:
    recs = client.generate(model, max_tokens=12, **kwargs)  # type: ignore[arg-type]
    return [(r.text, r.label) for r in recs]


@pytest.mark.parametrize("guidance", [-0.5, -1e-9, 10.000001, 11.0, math.nan, math.inf])
def test_guidance_outside_0_10_is_invalid(client: PrivsynthClient, guidance: float) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        list(client.generate("models/00000000000000dd", count=1, label="x", guidance=guidance))
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "guidance" in exc.value.field_violations


@pytest.mark.parametrize("guidance", [0.0, 10.0])
def test_guidance_bounds_are_accepted(client: PrivsynthClient, model: str, guidance: float) -> None:
    recs = _texts(client, model, count=2, seed=1, label="politics", guidance=guidance)
    assert len(recs) == 2


def test_guided_generation_is_labelled_seeded_and_changes_the_text(
    client: PrivsynthClient, model: str
) -> None:
    kwargs: dict[str, object] = {"count": 8, "seed": 11, "label": "politics"}
    guided = _texts(client, model, guidance=2.0, **kwargs)
    assert len(guided) == 8
    assert all(label == "politics" for _, label in guided)
    assert _texts(client, model, guidance=2.0, **kwargs) == guided
    # Unset and 0 are the same (off); guidance changes the records for the same seed.
    plain = _texts(client, model, **kwargs)
    assert _texts(client, model, guidance=0.0, **kwargs) == plain
    assert [t for t, _ in guided] != [t for t, _ in plain]


def test_guidance_applies_to_labels_drawn_from_the_mix(client: PrivsynthClient, model: str) -> None:
    guided = _texts(client, model, count=8, seed=4, guidance=2.0)
    plain = _texts(client, model, count=8, seed=4)
    assert len(guided) == 8
    # The labels are drawn from the mix by the seed alone; guidance changes only the text.
    assert [label for _, label in guided] == [label for _, label in plain]
    assert {label for _, label in guided} <= set(MIX)
    assert [t for t, _ in guided] != [t for t, _ in plain]
    assert _texts(client, model, count=8, seed=4, guidance=2.0) == guided


def test_cli_sample_guidance(
    server: object,
    client: PrivsynthClient,
    model: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    args = [*target, "sample", model, "-n", "3", "--seed", "5", "--max-tokens", "12"]
    assert main([*args, "--label", "politics", "--guidance", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    expected = _texts(client, model, count=3, seed=5, label="politics", guidance=2.0)
    assert [(x["text"], x["label"]) for x in lines] == expected
    assert all(x["synthetic"] is True and x["model"] == model for x in lines)

    assert main([*args, "--label", "politics", "--guidance", "11"]) == 2
    err = capsys.readouterr().err
    assert "guidance" in err and "Traceback" not in err
