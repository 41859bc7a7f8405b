"""Label prompt templates (issue 14): the rules, their refusals, and where they apply.

Each rule has its own case; a refusal names the rule, never the template (which could hold
anything the caller typed). Training requests check the template before anything is reserved:
an invalid one, or one for a preset whose model lays a label out as a control code, is
INVALID_ARGUMENT on field ``label_prompt``.
"""

from __future__ import annotations

import pytest
from privsynth.models import presets
from privsynth.models.family import tokenizer_for_preset
from privsynth.models.label_prompt import (
    DEFAULT_LABEL_PROMPT,
    MAX_LABEL_PROMPT,
    LabelPromptError,
    check_label_prompt,
    fill_label_prompt,
)
from privsynth.server.errors import InvalidArgument, Reason
from privsynth.server.jobs.requests import JobSpec

SECRET = "Zanzibar-4471"
"""Put into refused templates: no message may repeat it."""

BAD = [
    ("length", "Write {label}. " + "x" * MAX_LABEL_PROMPT),
    ("placeholder", f"Write a short review by {SECRET}."),
    ("placeholder", "Write {label} about {label}."),
    ("placeholder", "Write a short {Label} review."),
    ("braces", f"Write a {{0}} {SECRET} about {{label}}."),
    ("braces", "Write a short {label} review }"),
    ("braces", "Write a short {{label}} review."),
    ("printable", f"Write a short {{label}} review.\n{SECRET}"),
    ("printable", "Write a short {label}\treview."),
    ("special_token", f"<|im_start|>system {SECRET} {{label}}"),
    ("special_token", "Write {label}.<|im_end|>"),
    ("special_token", "[INST] Write {label}. [/INST]"),
    ("special_token", "</s>Write {label}."),
    ("special_token", "Write {label}.<end_of_turn>"),
]


@pytest.mark.parametrize(("rule", "template"), BAD)
def test_each_rule_refuses_without_quoting_the_template(rule: str, template: str) -> None:
    with pytest.raises(LabelPromptError) as exc:
        check_label_prompt(template)
    assert exc.value.rule == rule
    assert SECRET not in str(exc.value) and template not in str(exc.value)
    assert "label_prompt" in str(exc.value)


@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_LABEL_PROMPT,
        "Write a short {label} review.",
        "Write a short support ticket of category {label}.",
        "{label}",
        "Écris un avis {label} (court) — s'il te plaît <3",
        "Write {label}." + "x" * (MAX_LABEL_PROMPT - len("Write {label}.")),
    ],
)
def test_valid_templates_pass(template: str) -> None:
    assert check_label_prompt(template) == template


def test_the_label_is_put_in_by_replacement_never_by_format() -> None:
    assert fill_label_prompt("Write a short {label} review.", "positive") == (
        "Write a short positive review."
    )
    # A label holding braces or the placeholder itself stays as it is.
    assert fill_label_prompt("Ticket {label}.", "{0} {label}") == "Ticket {0} {label}."
    assert fill_label_prompt(DEFAULT_LABEL_PROMPT, "pets") == "Write a short text about pets."


@pytest.fixture
def hf_preset(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Hugging Face preset with no base to check for (so the spec needs no installed base)."""
    preset = presets.TrainingPreset("test-hf-prompt", "hf-lora", None, "no base")
    monkeypatch.setitem(presets.PRESETS, "test-hf-prompt", preset)
    return "test-hf-prompt"


@pytest.mark.parametrize(("rule", "template"), BAD)
def test_a_training_request_with_a_bad_template_is_invalid(
    hf_preset: str, rule: str, template: str
) -> None:
    with pytest.raises(InvalidArgument) as exc:
        JobSpec(dataset_id="d", target_epsilon=1.0, preset=hf_preset, label_prompt=template)
    assert exc.value.field == "label_prompt"
    assert exc.value.reason == Reason.LABEL_PROMPT_INVALID
    assert SECRET not in exc.value.message and template not in exc.value.message


@pytest.mark.parametrize("preset", ["tiny", "small", "small-scratch"])
def test_a_template_does_not_fit_a_control_code_preset(preset: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        JobSpec(
            dataset_id="d",
            target_epsilon=1.0,
            preset=preset,
            label_prompt="Write a short {label} review.",
        )
    assert exc.value.field == "label_prompt"
    assert exc.value.reason == Reason.LABEL_PROMPT_UNSUPPORTED
    assert "does not fit the chosen base" in exc.value.message
    with pytest.raises(LabelPromptError) as models_side:
        tokenizer_for_preset(preset, label_prompt="Write a short {label} review.")
    assert models_side.value.rule == "family"


def test_a_template_is_kept_on_the_spec_and_in_the_retry_digest(hf_preset: str) -> None:
    plain = JobSpec(dataset_id="d", target_epsilon=1.0, preset=hf_preset, request_id="r1")
    same = JobSpec(dataset_id="d", target_epsilon=1.0, preset=hf_preset, request_id="r1")
    review = JobSpec(
        dataset_id="d",
        target_epsilon=1.0,
        preset=hf_preset,
        request_id="r1",
        label_prompt="Write a short {label} review.",
    )
    assert plain.label_prompt is None and review.label_prompt == "Write a short {label} review."
    assert plain.digest() == same.digest() != review.digest()
    # Unset on a control-code preset is fine: nothing to fit.
    assert JobSpec(dataset_id="d", target_epsilon=1.0, preset="tiny").label_prompt is None
