"""Label prompt templates: how a label enters a natural-language prompt (issue 14).

The Hugging Face family asks its instruction-tuned base for a record in words, so how a label
reads in that request is part of the recipe. "Write a short text about {label}." suits topics
("pets", "sports") and asks for the wrong thing for a sentiment ("a short text about
positive") or an opaque code ("a short text about T-17"). A training request may therefore
carry its own template, e.g. ``Write a short {label} review.`` or ``Write a short support
ticket of category {label}.``; it is stored with the model so that sampling asks exactly what
training asked.

Rules (:func:`check_label_prompt`): ``{label}`` exactly once and no other brace (the label is
put in by plain replacement, never ``str.format``), one line of printable text, at most
:data:`MAX_LABEL_PROMPT` characters, and no chat special-token string (``<|im_start|>``,
``[INST]``, ...): the template is encoded with special-token strings split anyway, so this
refuses a mistake early rather than closing a hole. Only families whose prompt is natural
language take a template; privsynth's own transformer lays a label out as a control code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "DEFAULT_LABEL_PROMPT",
    "MAX_LABEL_PROMPT",
    "PLACEHOLDER",
    "UNLABELLED_PROMPT",
    "LabelPromptError",
    "check_label_prompt",
    "fill_label_prompt",
    "name_keywords",
]

PLACEHOLDER = "{label}"
DEFAULT_LABEL_PROMPT = "Write a short text about {label}."
"""The request every model trained before templates used (stored configs without one)."""
UNLABELLED_PROMPT = "Write a short text."
"""The request for a record without a label (templates do not change it)."""
MAX_LABEL_PROMPT = 200
"""Longest template in characters: one sentence, not a second prompt."""

_SPECIAL_TOKENS = re.compile(
    r"<\|[^|<>]{0,64}\|>"  # ChatML and friends: <|im_start|>, <|endoftext|>, <|eot_id|>
    r"|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<(?:bos|eos|pad|unk)>",
    re.IGNORECASE,
)


class LabelPromptError(ValueError):
    """A label prompt template breaks a rule; ``rule`` names which.

    The message names the rule and never quotes the template. Rules: ``length``,
    ``placeholder``, ``braces``, ``printable``, ``special_token``, ``family``.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def check_label_prompt(template: str) -> str:
    """Return ``template`` if it is a valid label prompt template.

    Raises:
        LabelPromptError: The first rule it breaks (see the module docs).
    """
    if len(template) > MAX_LABEL_PROMPT:
        raise LabelPromptError(
            "length", f"label_prompt must be at most {MAX_LABEL_PROMPT} characters"
        )
    count = template.count(PLACEHOLDER)
    if count != 1:
        raise LabelPromptError(
            "placeholder", f"label_prompt must contain {PLACEHOLDER} exactly once (found {count})"
        )
    if "{" in template.replace(PLACEHOLDER, "") or "}" in template.replace(PLACEHOLDER, ""):
        raise LabelPromptError(
            "braces",
            f"label_prompt may contain no braces besides its one {PLACEHOLDER} "
            "(no other format fields)",
        )
    if not template.isprintable():
        raise LabelPromptError(
            "printable", "label_prompt must be one line of printable text (no control characters)"
        )
    if _SPECIAL_TOKENS.search(template):
        raise LabelPromptError(
            "special_token",
            "label_prompt must not contain chat special-token strings (such as <|im_start|>)",
        )
    return template


def fill_label_prompt(template: str, label: str) -> str:
    """The request for ``label``: the template with ``{label}`` replaced (never formatted)."""
    return template.replace(PLACEHOLDER, label, 1)


KEYWORD_REQUEST = " Use these words: {words}."
"""Appended to a record's request when its decoding names its planned keywords."""


def name_keywords(request: str, words: Sequence[str]) -> str:
    """``request`` asking also for ``words`` (none: unchanged).

    The words come from a DP release over the base tokenizer's public vocabulary, so naming
    them is post-processing; each record names its own, which spreads the records over the
    label's vocabulary as independent draws would.
    """
    if not words:
        return request
    return request + KEYWORD_REQUEST.replace("{words}", ", ".join(words))
