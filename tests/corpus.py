"""Small corpora for tests: public fortunes plus synthetic PII-bearing support tickets."""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING

from privsynth.client.client import RecordIn

if TYPE_CHECKING:
    from privsynth.models.dp_train import Example

# Fake identities (no real people): the tests check these never come back out.
SECRET_NAME = "Zebulon Quagmire"
SECRET_EMAIL = "zebulon.quagmire@example.org"
SECRET_PHONE = "(415) 555-0134"


def fortunes(n: int) -> list[RecordIn]:
    ref = resources.files("privsynth.server") / "assets" / "demo_fortunes.jsonl"
    out = []
    with ref.open("r", encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            out.append(RecordIn(text=obj["text"], label=obj["label"]))
            if len(out) == n:
                break
    return out


def fortune_examples(n: int) -> list[Example]:
    """The first ``n`` fortunes as training examples (needs the server extra: torch)."""
    from privsynth.models.dp_train import Example

    return [Example(text=str(r.text), label=r.label) for r in fortunes(n)]


def tickets(n: int) -> list[RecordIn]:
    base = [
        f"Hi, this is {SECRET_NAME}. My router keeps dropping the connection every evening.",
        f"Please reply to {SECRET_EMAIL} about the refund for order 1182.",
        f"Call me back at {SECRET_PHONE}, the invoice total looks wrong.",
        "The app crashes when I open the settings page on my tablet.",
    ]
    return [RecordIn(text=base[i % len(base)], label="support") for i in range(n)]


_LONG_PII = (
    f"Write to {SECRET_NAME} at {SECRET_EMAIL} or call {SECRET_PHONE}.",
    "Ottoline Farquharson paid with 4111 1111 1111 1111 from 192.0.2.7 on March 3, 2021.",
)


def long_text(i: int, size: int = 64 * 1024) -> str:
    """About ``size`` bytes of public fortunes with synthetic PII every few sentences."""
    ref = resources.files("privsynth.server") / "assets" / "demo_fortunes.jsonl"
    texts = [json.loads(line)["text"] for line in ref.read_text(encoding="utf-8").splitlines()]
    parts: list[str] = []
    n = 0
    j = i * 37
    while n < size - 200:
        piece = texts[j % len(texts)] if j % 5 else _LONG_PII[j % len(_LONG_PII)]
        parts.append(piece)
        n += len(piece.encode("utf-8")) + 1
        j += 1
    return " ".join(parts).encode("utf-8")[: size - 8].decode("utf-8", "ignore")
