"""privsynth's extra recognizers and refinement: each catches what it should, and only that.

The values below are synthetic (generated or textbook test numbers), never real PII.
"""

from __future__ import annotations

from importlib.util import find_spec

import pytest
from privsynth.server.scrubbing.recognizers import (
    LuhnCardRecognizer,
    StreetAddressRecognizer,
    TextDateRecognizer,
    is_explicit_date,
    luhn_valid,
)
from privsynth.server.scrubbing.scrubber import Scrubber

# The name lexicon is read from Faker's lists; without Faker only cue words and spaCy find
# names, and the lower-case cases below cannot pass.
needs_faker = pytest.mark.skipif(find_spec("faker") is None, reason="faker not installed")


@pytest.fixture(scope="module")
def scrubber() -> Scrubber:
    s = Scrubber()
    s.load()
    return s


def scrub(scrubber: Scrubber, text: str) -> str:
    return scrubber.scrub_batch([text])[0].text


def spans(scrubber: Scrubber, text: str) -> dict[str, list[str]]:
    """Detected values by entity type, after the refinement step."""
    out: dict[str, list[str]] = {}
    for r in scrubber.analyze_batch([text])[0]:
        out.setdefault(r.entity_type, []).append(text[r.start : r.end])
    return out


# -- pure helpers ------------------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    "text", ["March 3, 2021", "3 March 2021", "03/04/2021", "2021-03-04", "Nov 5th", "May 2020"]
)
def test_explicit_dates(text: str) -> None:
    assert is_explicit_date(text)


@pytest.mark.parametrize(
    "text", ["this morning", "several years", "Friday", "at 3pm", "2019", "last week"]
)
def test_vague_dates(text: str) -> None:
    assert not is_explicit_date(text)


# -- street addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "1234 N Oak Street, Apt 5B, Springfield, IL 62704",
        "77 Maple Ave Suite 210, Evanston, Illinois 60201",
        "Flat 3, 27 Mill Lane, Bristol BS1 4DJ",
        "Hauptstraße 12, 10115 Berlin",
        "Berliner Allee 22a, 96213 Hamburg",
        "12 rue des Lilas, 75011 Paris",
        "12 rue de la paix, 75011 paris",  # lower case, with its postcode and town
        "110 bis avenue Victor Hugo",
        "26 rue des lieutenants Thomazo",  # one lower-case word before the name
        "42 elm st apt 3, springfield, il 62704",
        "9 Victoria Grove",
    ],
)
def test_street_address_whole_span(scrubber: Scrubber, address: str) -> None:
    text = f"Please ship it to {address}. Thanks!"
    assert scrub(scrubber, text) == "Please ship it to <STREET_ADDRESS>. Thanks!"


@pytest.mark.parametrize(
    "text",
    [
        "Take 2 tablets every 6 hours with food.",
        "Room 12 on the second floor was cold all night.",
        "I will call you at 3 on the way home.",
        "We have 5 stores in the area and 2 more coming.",
        "Bring 2 copies of the form.",
        # French street words that are English words too, before no name.
        "We have 3 route options and 12 place settings.",
        "I bought 2 place mats and 4 avenue trees.",
    ],
)
def test_street_address_negatives(text: str) -> None:
    assert StreetAddressRecognizer().analyze(text, ["STREET_ADDRESS"]) == []


@pytest.mark.parametrize(
    "text",
    [
        "We have 3 route options and 12 place settings.",
        "I bought 2 place mats and 4 avenue trees.",
        "They have 2 via points and 3 rue mixes left.",
    ],
)
def test_a_lower_case_street_word_before_no_name_is_prose_for_the_whole_scrubber(
    scrubber: Scrubber, text: str
) -> None:
    # The address-block rules (a house number, a street word, words, a number) took "3 route
    # options and 12" for a street; a street word in lower case needs a name after it.
    assert scrub(scrubber, text) == text


def test_a_french_style_street_ends_where_its_name_does() -> None:
    # Algeria: number, lower-case street word, the name, then " - " and the town.
    text = "26 boulevard Mokhtari - Tizi Ouzou"
    found = StreetAddressRecognizer().analyze(text, ["STREET_ADDRESS"])
    assert [text[r.start : r.end] for r in found] == ["26 boulevard Mokhtari"]


# -- cards, phones, NHS, IBAN, accounts --------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "2221 0000 0000 0009",  # Mastercard 2-series
        "4000 0000 0000 0000 006",  # 19-digit Visa
        "6759 0000 0000",  # 12-digit Maestro
        "3782-822463-10005",  # Amex
        "4111-1111-1111-1111",
    ],
)
def test_cards(scrubber: Scrubber, card: str) -> None:
    assert luhn_valid(card.replace(" ", "").replace("-", ""))
    assert scrub(scrubber, f"my card {card} was declined") == "my card <CREDIT_CARD> was declined"


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 shipped",  # Luhn fails
        "ref 9111 1111 1111 1119 attached",  # Luhn passes, no issuer starts with 9
        "card 4111-1111 1111-1111 here",  # mixed separators
    ],
)
def test_card_negatives(text: str) -> None:
    assert LuhnCardRecognizer().analyze(text, ["CREDIT_CARD"]) == []


def test_card_found_inside_longer_digit_run() -> None:
    text = "card 4111 1111 1111 1111 12 items"
    (r,) = LuhnCardRecognizer().analyze(text, ["CREDIT_CARD"])
    assert text[r.start : r.end] == "4111 1111 1111 1111"


@pytest.mark.parametrize(
    "phone",
    [
        "212-202-0199 ext. 123",
        "(415) 202-7788 x4456",
        "001-646-683-8672",
        "+1 212 202 0199",
        "+44 20 7946 0958",
        "+33 7 00 97 11 26",  # unallocated range, but written in international form
    ],
)
def test_phones(scrubber: Scrubber, phone: str) -> None:
    assert scrub(scrubber, f"call me on {phone} today") == "call me on <PHONE_NUMBER> today"


def test_us_number_is_not_uk_nhs(scrubber: Scrubber) -> None:
    # 2122020199 passes the NHS mod-11 check; without an NHS cue it is a phone number.
    found = spans(scrubber, "Reach me at 212-202-0199 please.")
    assert "UK_NHS" not in found
    assert found["PHONE_NUMBER"] == ["212-202-0199"]


def test_nhs_number_with_cue(scrubber: Scrubber) -> None:
    assert "UK_NHS" in spans(scrubber, "Her NHS number is 943 476 5919.")


@pytest.mark.parametrize(
    "iban", ["BE66 7778 8377 0242", "ES55 2713 6132 3220 8051 0508", "DE89370400440532013000"]
)
def test_iban_followed_by_a_word(scrubber: Scrubber, iban: str) -> None:
    assert scrub(scrubber, f"Refund to {iban} please.") == "Refund to <IBAN_CODE> please."


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("my account number is 0012345678 thanks", "0012345678"),
        ("Acct # 4402-118-993 was closed", "4402-118-993"),
        ("MRN 00482913. Admitted", "00482913"),
        ("policy number POL-5743498 renewed", "POL-5743498"),
    ],
)
def test_account_numbers(scrubber: Scrubber, text: str, value: str) -> None:
    assert spans(scrubber, text)["ACCOUNT_NUMBER"] == [value]


def test_number_without_cue_is_not_an_account(scrubber: Scrubber) -> None:
    assert "ACCOUNT_NUMBER" not in spans(scrubber, "Order 55812 shipped with 1200 units.")


# -- refinement --------------------------------------------------------------------------------


def test_vague_time_words_survive(scrubber: Scrubber) -> None:
    text = "I called this morning; we have been customers for several years. Friday works."
    assert scrub(scrubber, text) == text


def test_explicit_dates_are_redacted(scrubber: Scrubber) -> None:
    out = scrub(scrubber, "Seen on March 3, 2021, again 03/04/2021 and 2021-03-04.")
    assert out == "Seen on <DATE_TIME>, again <DATE_TIME> and <DATE_TIME>."


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("Login from 172.198.127.157 was blocked.", "IP_ADDRESS"),
        ("Call 0207 946 0958 after lunch.", "PHONE_NUMBER"),
        ("SSN 487 96 0153 on file.", "US_SSN"),
    ],
)
def test_pattern_beats_ner_guess(scrubber: Scrubber, text: str, entity: str) -> None:
    # spaCy's small model labels these DATE_TIME at 0.85; the validated pattern must win.
    found = spans(scrubber, text)
    assert entity in found
    assert "DATE_TIME" not in found


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("I forwarded your request to gábor szekeres who handles it.", "gábor szekeres"),
        ("this is julie menard, my card was declined", "julie menard"),
        ("Called pt, left message for Ruhide Aksu yesterday.", "Ruhide Aksu"),
        ("Dear Dr. Kankaanpää,\nthanks.", "Kankaanpää"),
        ("Kind regards,\nbianca nadi", "bianca nadi"),
        ("Hi evi,\nthe invoice is attached.", "evi"),
    ],
)
@needs_faker
def test_names(scrubber: Scrubber, text: str, name: str) -> None:
    out = scrub(scrubber, text)
    assert name not in out
    assert "<PERSON>" in out


@pytest.mark.parametrize(
    "text",
    [
        "Will you mark the ticket as resolved?",
        "Please bill the company account instead of my card.",
        "this is urgent, hello support, the Premium plan includes Priority Support.",
        "Caller said the app crashed.",
    ],
)
def test_name_negatives(scrubber: Scrubber, text: str) -> None:
    assert "PERSON" not in spans(scrubber, text)


def test_city_labelled_person_becomes_location(scrubber: Scrubber) -> None:
    found = spans(scrubber, "Discharged home to Bangalore yesterday.")
    assert found.get("LOCATION") == ["Bangalore"]


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("I'm in ARMINGHALL, at the conference", "ARMINGHALL"),
        ("Zendesk Inc. is a design agency based in Dutovlje.", "Dutovlje"),
        ("The courier arrived at Ilulissat this morning.", "Ilulissat"),
        ("She grew up in Novo Mesto and works remotely.", "Novo Mesto"),
        ("the economy of her home city MÖLNDAL has changed", "MÖLNDAL"),
    ],
)
def test_a_place_where_someone_is_or_goes_is_a_location(
    scrubber: Scrubber, text: str, place: str
) -> None:
    # Small towns and capitals written in full, which the spaCy model does not know.
    assert place in spans(scrubber, text).get("LOCATION", [])


@pytest.mark.parametrize(
    "text",
    [
        "I'm in charge of the release this week.",
        "We are in Linux land now, the port is done.",
        "Copyright (c) 1986 by University of Toronto.",
    ],
)
def test_a_place_cue_before_no_place_finds_nothing(scrubber: Scrubber, text: str) -> None:
    # "University of" is no place cue: it took the copyright holder's "Toronto" for a place.
    assert "LOCATION" not in spans(scrubber, text)


@pytest.mark.parametrize(
    ("text", "stamp"),
    [
        ("> At 20:18 03/08/02 +0100, you wrote:", "20:18 03/08/02 +0100"),
        ("sent 12/05/2003 14:22:01 GMT by the robot", "12/05/2003 14:22:01 GMT"),
    ],
)
def test_a_numeric_date_takes_the_time_and_zone_around_it(text: str, stamp: str) -> None:
    found = [text[r.start : r.end] for r in TextDateRecognizer().analyze(text, [])]
    assert found == [stamp]
    assert TextDateRecognizer().analyze("born 03/04/1990, ratio 1/2/3", []) == []


# -- adversarial text: same matches, bounded work (timed in benchmarks/pathological_text.py) --


_URLS = (
    "see http://www.example.com/path?q=1 and foo.community, x.co.uk and www3.foo.org",
    "'https://a.b.accountants/x' \"bank.example.net/login\" mail.google.com",
    "Ab.Ab.Ab.Abc.co.Ab.accountan.accountant.comm 1.2.3.4.io",
)


def test_url_tld_trie_keeps_presidios_matches_and_leads_its_alternation() -> None:
    # Presidio's URL patterns tried 675 TLDs after every dot: 8 KB of "Ab.Ab." took 6 s.
    import regex
    from presidio_analyzer.predefined_recognizers import UrlRecognizer
    from privsynth.server.scrubbing.recognizers import _fast_tlds

    plain, trie = UrlRecognizer(), UrlRecognizer()
    _fast_tlds(trie)
    flags = regex.I | regex.M | regex.S
    for before, after in zip(plain.patterns, trie.patterns, strict=True):
        assert after.regex.count("(?=") == before.regex.count("(?=") + 1
        assert after.compiled_regex is None
        old, new = regex.compile(before.regex, flags), regex.compile(after.regex, flags)
        for text in _URLS:
            assert [m.span() for m in new.finditer(text)] == [m.span() for m in old.finditer(text)]


def test_eu_street_words_are_bounded_but_the_longest_real_one_fits() -> None:
    # An unbounded word was backed through from each capital of "Ab-Ab-Ab-" (2.7 s per 8 KB).
    street = "Bischöflich-Geistlicher-Rat-Josef-Zinnbauer-Straße 3"  # Germany's longest, 49
    found = StreetAddressRecognizer().analyze(f"Sie wohnt in der {street}.", ["STREET_ADDRESS"])
    assert [(r.start, r.end) for r in found] == [(17, 17 + len(street))]
    long_word = "Ab-" * 100 + "straße 3"  # found from at most 80 characters before its suffix
    found = StreetAddressRecognizer().analyze(long_word, ["STREET_ADDRESS"])
    assert [r.end for r in found] == [len(long_word)] and found[0].start >= len(long_word) - 90


def test_token_lookup_by_bisection_gives_presidios_answers(scrubber: Scrubber) -> None:
    # Presidio walked every token for every result: results x tokens on a long record.
    from presidio_analyzer import LemmaContextAwareEnhancer
    from privsynth.server.scrubbing.recognizers import _token_at

    text = "Call  Ann-Marie O'Neil at 555-0100 (ext. 12), or\n\tmail ann@example.org today.  "
    artifacts = scrubber._analyzer.nlp_engine.process_text(text, "en")
    tokens, indices = artifacts.tokens, artifacts.tokens_indices
    presidio = LemmaContextAwareEnhancer._find_index_of_match_token
    for start in range(len(text)):
        try:
            expected: int | None = presidio("w", start, tokens, indices)
        except ValueError:
            expected = None
        try:
            got: int | None = _token_at("w", start, tokens, indices)
        except ValueError:
            got = None
        assert got == expected, start
