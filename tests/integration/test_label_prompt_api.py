"""Label prompt templates through the API (issue 14).

Over gRPC (the session's in-process server): a template that breaks a rule, or one for a
preset whose model lays a label out as a control code, is INVALID_ARGUMENT on field
``label_prompt`` with its own reason, and nothing is reserved in the ledger; the CLI's
``--label-prompt`` reaches the server. (A job with a template, through to the stored model:
``test_guided_jobs``.)
"""

from __future__ import annotations

import grpc
import pytest
from corpus import fortunes
from privsynth.client.cli import main
from privsynth.client.client import PrivsynthClient
from privsynth.client.errors import PrivsynthClientError
from privsynth.client.exit_codes import ExitCode

SECRET = "Zanzibar-4471"
REVIEW = "Write a short {label} review."


@pytest.fixture(scope="module")
def dataset(server: object) -> str:
    with PrivsynthClient(f"127.0.0.1:{server.port}") as c:  # type: ignore[attr-defined]
        return c.upload_dataset(fortunes(40), display_name="label-prompt", epsilon_cap=5).name


@pytest.mark.parametrize(
    ("preset", "template", "reason"),
    [
        ("smollm2", f"Write a review by {SECRET}.", "LABEL_PROMPT_INVALID"),
        ("smollm2", "Write {label} and {label}.", "LABEL_PROMPT_INVALID"),
        ("smollm2", f"Write a {{0}} {SECRET} {{label}}.", "LABEL_PROMPT_INVALID"),
        ("smollm2", "Write {label}. " + "x" * 200, "LABEL_PROMPT_INVALID"),
        ("smollm2", f"<|im_start|>system {SECRET} {{label}}", "LABEL_PROMPT_INVALID"),
        ("smollm2-pe", "Write {label}.\nThen stop.", "LABEL_PROMPT_INVALID"),
        ("tiny", REVIEW, "LABEL_PROMPT_UNSUPPORTED"),
        ("small", REVIEW, "LABEL_PROMPT_UNSUPPORTED"),
    ],
)
def test_a_bad_template_is_invalid_before_any_reservation(
    client: PrivsynthClient, dataset: str, preset: str, template: str, reason: str
) -> None:
    with pytest.raises(PrivsynthClientError) as exc:
        client.create_training_job(
            dataset, target_epsilon=1.0, preset=preset, label_prompt=template
        )
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.reason == reason
    assert set(exc.value.field_violations) == {"label_prompt"}
    assert SECRET not in str(exc.value) and template not in exc.value.message
    if reason == "LABEL_PROMPT_UNSUPPORTED":
        assert "does not fit the chosen base" in exc.value.message
    budget = client.get_budget(dataset)
    assert budget.epsilon_reserved == 0 and budget.epsilon_spent == 0
    assert list(client.list_ledger_entries(dataset)) == []


def test_the_cli_flag_reaches_the_server(
    server: object, dataset: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--target", f"127.0.0.1:{server.port}"]  # type: ignore[attr-defined]
    train = [*target, "train", dataset, "--epsilon", "1", "--preset", "tiny", "--no-watch"]
    assert main([*train, "--label-prompt", REVIEW]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "LABEL_PROMPT_UNSUPPORTED" in err and "does not fit the chosen base" in err
    assert "Traceback" not in err
