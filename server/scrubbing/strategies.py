"""Replacement strategies for detected PII, chosen per entity type in ``conf/scrub.yaml``.

Five strategies:

* ``placeholder`` (default) - the typed placeholder ``<PERSON>``: keeps what kind of thing was
  there, which the generator can learn, and nothing of the value.
* ``redact`` - remove the span. For fields whose mere presence is noise.
* ``mask`` - replace each letter and digit with a mask character, keeping separators, length
  and optionally the last ``keep_last`` characters (the usual "last 4 of a card").
* ``hash`` - HMAC-SHA256 of the value under the dataset key, hex, truncated: equal values stay
  linkable inside the dataset (the same customer across tickets) without being readable.
* ``pseudonym`` - a realistic, format-preserving surrogate from Faker, seeded by an HMAC of the
  value under the dataset key: the same value maps to the same surrogate everywhere in a
  dataset (in every worker process, with no mapping table to store or leak), a phone stays a
  phone, an e-mail an e-mail, a name a name.

The dataset key is passed in by the caller and only lives in memory; nothing here stores or
logs it, and two sub-keys are derived from it so a published hash never reveals a pseudonym
seed. On the server it comes from :func:`dataset_key`: an HMAC of the dataset id under the
server's master secret (``PRIVSYNTH_SCRUB_SECRET``), recomputed whenever needed and never
written next to the data, so a copy of the database and artifacts alone cannot reverse a
hash or a pseudonym by trying candidate values.

Surrogates avoid real identifiers where a reserved range exists (``example.com`` /
``.net`` / ``.org`` e-mails and URLs, 555-01xx US phone numbers, RFC 5737 / RFC 3849
documentation IP addresses); the scrubber also records every span it wrote so the residual
check never counts its own surrogates as leaked PII.

Configuration errors (unknown strategy, unknown entity type, bad option) raise
:class:`StrategyConfigError` at load time, never while scrubbing; a keyed policy without a
master secret stops the server at start-up (``Settings``), and a scrub call without a key
fails before it replaces anything.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from privsynth.server.scrubbing.scrubber import ScrubberConfigError

__all__ = [
    "STRATEGIES",
    "EntityStrategy",
    "Replacer",
    "ScrubPolicy",
    "StrategyConfigError",
    "dataset_key",
    "load_policy",
]

#: Strategy names accepted in ``scrub.yaml``.
STRATEGIES = ("placeholder", "redact", "mask", "hash", "pseudonym")
#: Strategies that need the per-dataset key.
KEYED_STRATEGIES = frozenset({"hash", "pseudonym"})
#: Shortest accepted dataset key: below 128 bits an HMAC key can be brute-forced.
MIN_KEY_BYTES = 16

_OPTIONS: dict[str, dict[str, type]] = {
    "placeholder": {},
    "redact": {},
    "mask": {"char": str, "keep_last": int},
    "hash": {"length": int},
    "pseudonym": {},
}


#: Date profiles a policy may name (see :class:`ScrubPolicy`).
DATE_PROFILES = ("default", "hipaa")
_YEAR = re.compile(r"(?<!\d)(?:1[89]|20)\d\d(?!\d)")


def keep_year(replace: Callable[[str], str]) -> Callable[[str], str]:
    """A DATE_TIME replacement that appends the year of the value (HIPAA Safe Harbor)."""

    def replaced(value: str) -> str:
        year = _YEAR.search(value)
        out = replace(value)
        return f"{out} {year.group(0)}" if year else out

    return replaced


class StrategyConfigError(ScrubberConfigError):
    """``scrub.yaml`` names an unknown strategy or entity type, or a keyed strategy lacks a key."""


def dataset_key(master: bytes, dataset_id: str) -> bytes:
    """The per-dataset key: HMAC-SHA256 of the dataset id under the server's master secret.

    Deterministic, so every worker process and every later re-scrub of the same dataset
    derives the same key without it ever being stored; different for every dataset, so
    surrogates cannot be linked across datasets. The message carries a version label
    (domain separation from any other use of the master secret).

    Raises:
        StrategyConfigError: The master secret is shorter than :data:`MIN_KEY_BYTES`.
    """
    if len(master) < MIN_KEY_BYTES:
        raise StrategyConfigError(f"the scrub master secret must be at least {MIN_KEY_BYTES} bytes")
    msg = b"privsynth/dataset-key/v1\0" + dataset_id.encode("utf-8")
    return hmac.new(master, msg, hashlib.sha256).digest()


@dataclass(frozen=True)
class EntityStrategy:
    """One entity type's replacement strategy and its options.

    Attributes:
        name: One of :data:`STRATEGIES`.
        char: Mask character (``mask``).
        keep_last: Letters/digits left visible at the end (``mask``).
        length: Hex characters kept of the HMAC (``hash``).
    """

    name: str = "placeholder"
    char: str = "*"
    keep_last: int = 0
    length: int = 16


@dataclass(frozen=True)
class ScrubPolicy:
    """Which strategy applies to which entity type.

    Attributes:
        default: Strategy for entity types not listed.
        entities: Per-entity overrides.
        source: Where the policy came from (for error messages; never a value).
        dates: The date profile (:data:`DATE_PROFILES`): ``default`` replaces calendar
            dates of day or month precision and leaves a bare year, weekday or time alone;
            ``hipaa`` (Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)) replaces every date element
            (weekdays, months, days, times) and keeps only the year.
    """

    default: EntityStrategy = field(default_factory=EntityStrategy)
    entities: Mapping[str, EntityStrategy] = field(default_factory=dict)
    source: str = "<defaults>"
    dates: str = "default"
    phone_regions: tuple[str, ...] | None = None

    def strategy_for(self, entity_type: str) -> EntityStrategy:
        """The strategy that replaces ``entity_type``."""
        return self.entities.get(entity_type, self.default)

    @property
    def needs_key(self) -> bool:
        """True if any strategy is keyed (hash or pseudonym)."""
        return any(s.name in KEYED_STRATEGIES for s in (self.default, *self.entities.values()))

    def describe(self) -> str:
        """Short, value-free summary for scrub reports ("placeholder" when nothing is set)."""
        dates = "" if self.dates == "default" else f"; dates={self.dates}"
        if not self.entities:
            return self.default.name + dates
        parts = ", ".join(f"{e}={s.name}" for e, s in sorted(self.entities.items()))
        return f"{self.default.name}; {parts}{dates}"

    def validate_entities(self, known: Iterable[str]) -> None:
        """Fail if the policy names an entity type that no recognizer produces.

        A typo ("EMAIL" for "EMAIL_ADDRESS") would otherwise silently leave that type on the
        default strategy.

        Raises:
            StrategyConfigError: An entity type is unknown.
        """
        known_set = set(known)
        unknown = sorted(set(self.entities) - known_set)
        if unknown:
            raise StrategyConfigError(
                f"{self.source}: unknown entity type(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known_set))}"
            )

    @classmethod
    def from_mapping(cls, data: Any, source: str = "<mapping>") -> ScrubPolicy:
        """Build a policy from parsed YAML.

        Raises:
            StrategyConfigError: Malformed document, unknown strategy or option.
        """
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise StrategyConfigError(f"{source}: expected a mapping with 'default' / 'entities'")
        extra = set(data) - {"default", "entities", "dates", "phone_regions"}
        if extra:
            raise StrategyConfigError(f"{source}: unknown key(s) {', '.join(sorted(extra))}")
        default = _parse_strategy(data.get("default", "placeholder"), f"{source}: default")
        raw = data.get("entities") or {}
        if not isinstance(raw, dict):
            raise StrategyConfigError(f"{source}: 'entities' must map entity types to strategies")
        entities = {}
        for entity, spec in raw.items():
            if not isinstance(entity, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", entity):
                raise StrategyConfigError(
                    f"{source}: entity type {entity!r} is not an upper-case type name"
                )
            entities[entity] = _parse_strategy(spec, f"{source}: {entity}")
        dates = data.get("dates", "default")
        if dates not in DATE_PROFILES:
            raise StrategyConfigError(
                f"{source}: dates must be one of {', '.join(DATE_PROFILES)}, not {dates!r}"
            )
        regions = data.get("phone_regions")
        if regions is not None:
            import phonenumbers

            if not isinstance(regions, list) or not regions:
                raise StrategyConfigError(f"{source}: phone_regions must be a list of region codes")
            unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
            if unknown:
                raise StrategyConfigError(
                    f"{source}: unknown phone region(s) {', '.join(map(str, unknown))}"
                )
            regions = tuple(regions)
        return cls(
            default=default,
            entities=entities,
            source=source,
            dates=dates,
            phone_regions=regions,
        )


def _parse_strategy(spec: Any, where: str) -> EntityStrategy:
    if isinstance(spec, str):
        spec = {"strategy": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("strategy"), str):
        raise StrategyConfigError(f"{where}: expected a strategy name or {{strategy: ..., ...}}")
    name = spec["strategy"]
    if name not in _OPTIONS:
        raise StrategyConfigError(
            f"{where}: unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}"
        )
    options = {k: v for k, v in spec.items() if k != "strategy"}
    for key, value in options.items():
        expected = _OPTIONS[name].get(key)
        if expected is None:
            raise StrategyConfigError(f"{where}: strategy {name!r} has no option {key!r}")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise StrategyConfigError(f"{where}: option {key!r} must be {expected.__name__}")
    strategy = EntityStrategy(name=name, **options)
    if len(strategy.char) != 1:
        raise StrategyConfigError(f"{where}: mask char must be one character")
    if strategy.keep_last < 0:
        raise StrategyConfigError(f"{where}: keep_last must be >= 0")
    if not 8 <= strategy.length <= 64:
        raise StrategyConfigError(f"{where}: hash length must lie in 8..64")
    return strategy


def load_policy(path: Path | None = None) -> ScrubPolicy:
    """Read a policy from YAML; ``None`` reads the packaged ``conf/scrub.yaml``.

    Raises:
        StrategyConfigError: The file is missing, not YAML, or invalid.
    """
    try:
        if path is None:
            ref = resources.files("privsynth.server") / "conf" / "scrub.yaml"
            source, text = "conf/scrub.yaml", ref.read_text(encoding="utf-8")
        else:
            source, text = str(path), path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise StrategyConfigError(f"cannot read scrub policy: {type(exc).__name__}") from None
    return ScrubPolicy.from_mapping(data, source)


# ----------------------------------------------------------------------------------------------
# Replacement
# ----------------------------------------------------------------------------------------------

_DOC_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")  # RFC 2606


def _normalise(entity_type: str, value: str) -> str:
    """The form under which two spellings count as the same value.

    Case and spacing never matter, and neither do separators in numbers ("212-555-0199"
    and "(212) 555 0199" are one phone).
    """
    if entity_type in {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "ACCOUNT_NUMBER"}:
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return " ".join(value.casefold().split())


def _luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _fill(layout: str, digits: str) -> str:
    """Write ``digits`` into the digit positions of ``layout``, keeping every separator."""
    it = iter(digits)
    return "".join(next(it) if ch.isdigit() else ch for ch in layout)


def _shape(value: str, rnd: random.Random) -> str:
    """Format-preserving substitute: digits, upper and lower letters replaced in kind."""
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(str(rnd.randrange(10)))
        elif ch.isalpha():
            c = chr(ord("a") + rnd.randrange(26))
            out.append(c.upper() if ch.isupper() else c)
        else:
            out.append(ch)
    return "".join(out)


def _match_case(surrogate: str, value: str) -> str:
    if value.islower():
        return surrogate.lower()
    if value.isupper() and len(value) > 3:
        return surrogate.upper()
    return surrogate


class Replacer:
    """Turns a :class:`ScrubPolicy` and a dataset key into Presidio anonymizer operators.

    Pseudonyms are a pure function of (key, entity type, normalised value), so two worker
    processes holding the same key agree without sharing state, and a re-run of the same
    dataset reproduces its surrogates. Distinct values can collide on one surrogate (names
    more than numbers); that loses linkage, never privacy.

    Args:
        policy: Strategy per entity type.
        key: Per-dataset secret; required when the policy uses ``hash`` or ``pseudonym``.

    Raises:
        StrategyConfigError: A keyed strategy without a key, or a key under 16 bytes.
    """

    def __init__(self, policy: ScrubPolicy, key: bytes | None = None) -> None:
        self.policy = policy
        if policy.needs_key:
            if key is None:
                raise StrategyConfigError(
                    f"{policy.source}: strategies 'hash' and 'pseudonym' need a per-dataset key"
                )
            if len(key) < MIN_KEY_BYTES:
                raise StrategyConfigError(f"the dataset key must be at least {MIN_KEY_BYTES} bytes")
        self._hash_key = hmac.new(key or b"", b"privsynth/hash/v1", hashlib.sha256).digest()
        self._seed_key = hmac.new(key or b"", b"privsynth/pseudonym/v1", hashlib.sha256).digest()
        self._operators: dict[str, Any] = {}

    # -- strategies ----------------------------------------------------------------------------

    def keyed_hash(self, entity_type: str, value: str, length: int = 16) -> str:
        """Hex HMAC-SHA256 of the normalised value, truncated to ``length`` characters."""
        msg = f"{entity_type}\0{_normalise(entity_type, value)}".encode()
        return hmac.new(self._hash_key, msg, hashlib.sha256).hexdigest()[:length]

    @staticmethod
    def mask(value: str, char: str = "*", keep_last: int = 0) -> str:
        """Mask letters and digits, keeping separators and the last ``keep_last`` of them."""
        total = sum(ch.isalnum() for ch in value)
        seen = 0
        out = []
        for ch in value:
            if ch.isalnum():
                seen += 1
                out.append(ch if seen > total - keep_last else char)
            else:
                out.append(ch)
        return "".join(out)

    def pseudonym(self, entity_type: str, value: str) -> str:
        """A realistic surrogate of the same type and format, the same for the same value."""
        msg = f"{entity_type}\0{_normalise(entity_type, value)}".encode()
        seed = int.from_bytes(hmac.new(self._seed_key, msg, hashlib.sha256).digest()[:8], "big")
        rnd = random.Random(seed)
        make = _PSEUDONYMS.get(entity_type)
        original = _normalise(entity_type, value)
        # One Faker per process (building one costs ~50 ms), reseeded per value; the lock
        # keeps seed and draw together when gRPC threads scrub in the server process.
        with _FAKER_LOCK:
            fake = _faker()
            fake.seed_instance(seed)
            # Small surrogate ranges (a US line is one of 100 fictional 555-01xx numbers)
            # can draw the value itself: that would leave it in place, so draw again. The
            # later draws come from the same seeded generators, so the result stays a
            # function of key and value.
            for _ in range(_MAX_DRAWS):
                out = _shape(value, rnd) if make is None else make(value, rnd, fake)
                if _normalise(entity_type, out) != original:
                    break
            return out

    def replace(self, entity_type: str, value: str) -> str:
        """What ``value`` becomes under the policy, exactly as the anonymizer would write it.

        For values known without the analyzer (an e-mail header's display name and address):
        replaced through this, they get the same placeholder, hash or pseudonym as the same
        value found by the analyzer in a body.
        """
        s = self.policy.strategy_for(entity_type)
        if s.name == "placeholder":
            return f"<{entity_type}>"
        if s.name == "redact":
            return ""
        return self._custom(entity_type, s)(value)

    # -- Presidio ------------------------------------------------------------------------------

    def operators(self, entity_types: Iterable[str]) -> dict[str, Any]:
        """Presidio ``OperatorConfig`` per entity type (built once per type and cached)."""
        from presidio_anonymizer.entities import OperatorConfig

        for entity in entity_types:
            if entity in self._operators:
                continue
            s = self.policy.strategy_for(entity)
            if entity == "DATE_TIME" and self.policy.dates == "hipaa":
                op = OperatorConfig("custom", {"lambda": keep_year(partial(self.replace, entity))})
            elif s.name == "placeholder":
                op = OperatorConfig("replace")  # no new_value: Presidio writes "<ENTITY>"
            elif s.name == "redact":
                op = OperatorConfig("redact")
            else:
                op = OperatorConfig("custom", {"lambda": self._custom(entity, s)})
            self._operators[entity] = op
        return self._operators

    def _custom(self, entity: str, s: EntityStrategy) -> Callable[[str], str]:
        if s.name == "mask":
            return lambda v: self.mask(v, s.char, s.keep_last)
        if s.name == "hash":
            return lambda v: self.keyed_hash(entity, v, s.length)
        return lambda v: self.pseudonym(entity, v)


_FAKER_LOCK = threading.Lock()
_FAKER: Any = None


def _faker() -> Any:
    global _FAKER
    if _FAKER is None:
        from faker import Faker

        _FAKER = Faker("en_US")
    return _FAKER


# -- format-preserving surrogates, one per entity type ------------------------------------------


def _person(value: str, rnd: random.Random, fake: Any) -> str:
    words = value.split()
    name = fake.first_name() if len(words) == 1 else f"{fake.first_name()} {fake.last_name()}"
    return _match_case(name, value)


def _email(value: str, rnd: random.Random, fake: Any) -> str:
    first = re.sub(r"[^a-z]", "", str(fake.first_name()).lower()) or "user"
    last = re.sub(r"[^a-z]", "", str(fake.last_name()).lower()) or "name"
    user = f"{first}.{last}"
    return f"{user}{rnd.randrange(100)}@{rnd.choice(_EXAMPLE_DOMAINS)}"


_MAX_DRAWS = 16
"""Draws before a surrogate that keeps equalling its value is returned anyway."""


def _phone(value: str, rnd: random.Random, fake: Any) -> str:
    digits = re.sub(r"\D", "", value)
    n = len(digits)
    main = re.split(r"(?i)\s*(?:ext\.?|x|extension)\s*\d", value)[0]
    main_digits = len(re.sub(r"\D", "", main))
    lead = main_digits - 10
    us = lead >= 0 and (lead == 0 or digits[:lead] in {"1", "001", "01"})
    if us:
        # Fictional range: NXX-555-01XX (reserved for fiction by the NANP).
        area = f"{rnd.randrange(2, 10)}{rnd.randrange(10)}{rnd.randrange(10)}"
        # Never the value's own line: a fictional 555-01xx number in the input would
        # otherwise keep its last seven digits one time in a hundred.
        own = digits[lead + 3 : lead + 10]
        line = own
        while line == own:
            line = f"5550{rnd.randrange(100, 200)}"
        line = area + line
        new = digits[:lead] + line + "".join(str(rnd.randrange(10)) for _ in range(n - lead - 10))
    else:
        keep = 2 if value.lstrip().startswith("+") else 4 if digits.startswith("00") else 1
        new = digits[:keep] + "".join(str(rnd.randrange(10)) for _ in range(n - keep))
    return _fill(value, new)


def _card(value: str, rnd: random.Random, fake: Any) -> str:
    digits = re.sub(r"\D", "", value)
    body = digits[:1] + "".join(str(rnd.randrange(10)) for _ in range(len(digits) - 2))
    return _fill(value, body + _luhn_digit(body))


def _ssn(value: str, rnd: random.Random, fake: Any) -> str:
    digits = re.sub(r"\D", "", value)
    area = rnd.choice([a for a in range(100, 900) if a != 666])
    new = f"{area:03d}{rnd.randrange(1, 100):02d}{rnd.randrange(1, 10000):04d}"
    return _fill(value, new) if len(digits) == 9 else _shape(value, rnd)


def _iban(value: str, rnd: random.Random, fake: Any) -> str:
    compact = re.sub(r"\s", "", value).upper()
    country = compact[:2] if compact[:2].isalpha() else "DE"
    bban = "".join(
        str(rnd.randrange(10)) if ch.isdigit() else chr(ord("A") + rnd.randrange(26))
        for ch in compact[4:]
    )
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = f"{98 - int(numeric) % 97:02d}"
    it = iter(country + check + bban)
    return "".join(next(it) if not ch.isspace() else ch for ch in value)


def _ip(value: str, rnd: random.Random, fake: Any) -> str:
    if ":" in value:
        return f"2001:db8::{rnd.randrange(1, 0xFFFF):x}"  # RFC 3849
    return f"{rnd.choice(_DOC_NETS)}.{rnd.randrange(1, 255)}"


def _url(value: str, rnd: random.Random, fake: Any) -> str:
    m = re.match(r"(?i)((?:https?|ftp)://)?(www\.)?[^/?#\s]*(.*)", value)
    scheme, www, rest = (m.group(1) or "", m.group(2) or "", m.group(3)) if m else ("", "", "")
    path = f"/{rnd.getrandbits(32):08x}" if rest.strip("/") else rest
    return f"{scheme}{www}{rnd.choice(_EXAMPLE_DOMAINS)}{path}"


def _date(value: str, rnd: random.Random, fake: Any) -> str:
    d = date(1950, 1, 1) + timedelta(days=rnd.randrange(365 * 70))
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return d.isoformat()
    m = re.fullmatch(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{2}|\d{4})", value)
    if m:
        year = d.strftime("%Y") if len(m.group(4)) == 4 else d.strftime("%y")
        first, second = (d.month, d.day) if m.group(2) == "/" else (d.day, d.month)
        return f"{first:02d}{m.group(2)}{second:02d}{m.group(2)}{year}"
    if re.search(r"(?:19|20)\d{2}", value):
        return f"{d.strftime('%B')} {d.day}, {d.year}"
    return f"{d.strftime('%B')} {d.day}"


def _street(value: str, rnd: random.Random, fake: Any) -> str:
    street = str(fake.street_address())
    return f"{street}, {fake.city()}" if ("," in value or "\n" in value) else street


_PSEUDONYMS: dict[str, Callable[[str, random.Random, Any], str]] = {
    "PERSON": _person,
    "EMAIL_ADDRESS": _email,
    "PHONE_NUMBER": _phone,
    "CREDIT_CARD": _card,
    "US_SSN": _ssn,
    "IBAN_CODE": _iban,
    "IP_ADDRESS": _ip,
    "URL": _url,
    "DATE_TIME": _date,
    "STREET_ADDRESS": _street,
    "LOCATION": lambda value, rnd, fake: _match_case(str(fake.city()), value),
}
