"""Build a labelled PII evaluation set offline, deterministically, in memory.

The set is generated from hand-written templates (support tickets, e-mails, clinical-ish notes
and PII-free negative sentences) filled with values from Faker (names from many locales) and
from generators written here (valid-checksum cards and IBANs, SSNs, phone numbers in many
formats, postal addresses in several national styles). Every filled value records its gold
character span, so nothing is labelled by hand or by a model.

Labelling decisions (see ``benchmarks/README.md``):

* ``STREET_ADDRESS`` is a whole postal address as written: house number, street, unit, and,
  when present, city, region and postcode, as ONE span. A partly redacted address still leaks,
  so coverage of the whole span is what matters. ``LOCATION`` is a stand-alone city or country.
* ``DATE_TIME`` gold spans are explicit calendar dates only (day or month precision: "March 3,
  2021", "03/04/2021", "2021-03-04", "July 4th", "March 2021"). Vague or relative expressions
  ("this morning", "several years", "Friday", "at 3pm", a bare year) are not PII and appear in
  negative sentences, where any detection is a false positive.
* ``PERSON`` spans hold the name only, never a title ("Dr. {last}" labels the surname).
* ``ACCOUNT_NUMBER`` is an account, member, policy or record number introduced by a context
  word; the span is the number only.

Honesty measures: the templates and negatives were written before any recognizer was tuned;
templates marked ``heldout`` (and the address styles ``AU``/``CA``/``NL`` and the held-out city
list, used only by them) were not looked at while tuning, and results are also reported for
that split alone.

Run ``python benchmarks/pii_eval_data.py`` to print a few samples and the label counts.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

__all__ = ["ENTITY_TYPES", "Example", "Span", "build_eval_set"]

ENTITY_TYPES = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "LOCATION",
    "DATE_TIME",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
    "ACCOUNT_NUMBER",
)


@dataclass(frozen=True)
class Span:
    """A gold entity: ``text[start:end]`` is a value of ``entity_type``."""

    start: int
    end: int
    entity_type: str


@dataclass(frozen=True)
class Example:
    """One text with its gold spans, the template it came from and its split."""

    text: str
    spans: tuple[Span, ...]
    domain: str
    template_id: str
    split: str  # "dev" or "heldout"


# --------------------------------------------------------------------------------------------
# Templates. Slots: {name} full name (style varies), {lname} lower-cased full name, {first},
# {last}, {email}, {phone}, {address} full postal address, {street} street line only, {city},
# {country}, {date}, {card}, {ssn}, {iban}, {ip}, {url}, {account}.
# --------------------------------------------------------------------------------------------

DEV_TEMPLATES: dict[str, list[str]] = {
    "ticket": [
        "Hi, my name is {name} and I can't log in since the last update. "
        "You can reach me at {phone}.",
        "Customer {name} ({email}) reports that card {card} was charged twice.",
        "Please update the shipping address for order 55812 to {address}.",
        "this is {lname}, my account number is {account} and the app keeps crashing",
        "Caller said her SSN is {ssn} and asked us to verify the last payment.",
        "Refund to IBAN {iban} please, the holder is {name}.",
        "User {first} could not access {url} from IP {ip}; error 403 every time.",
        "The package was delivered to {street} instead of my place in {city}.",
        "Hello support, {name} here. My card ending in the number {card} expired on {date}.",
        "Callback requested: {phone}. Customer prefers mornings. Account {account}.",
        "I moved to {city}, {country} and need to change my billing address to {address}.",
        "hey, its {lname}. tried calling {phone} but nobody picked up",
        "Login attempts from {ip} and {ip} were blocked for user {email}.",
        "Wire transfer from {iban} on {date} did not arrive, reference 2231.",
    ],
    "email": [
        "Dear {name},\n\nthank you for your message. We will send the contract to {address} "
        "by {date}.\n\nKind regards,\n{name}",
        "Hi {first},\nplease find the invoice attached. Questions? Call me on {phone} or "
        "write to {email}.\nBest,\n{name}",
        "From: {email}\nTo: {email}\nSubject: meeting in {city}\n\n{first}, are you free to "
        "meet in {city} on {date}?",
        "Hello {first}, I forwarded your request to {lname} who handles accounts in {country}.",
        "Dear Dr. {last},\nmy wife {name} will bring the documents on {date}. "
        "Our home number is {phone}.",
        "Please pay into {iban} (account holder {name}) before {date}.",
        "Reminder: the team offsite is at {address}. Directions: {url}",
        "Thanks {first}! I also cc'd {name} ({email}).",
        "{name} wrote:\n> Can you check why {url} is down?\nIt works again from {ip}.",
    ],
    "clinical": [
        "Pt {name}, DOB {date}, seen today for follow-up. BP 132/84. Lives at {address}.",
        "Patient {lname} called from {phone} re: refill of lisinopril 10 mg.",
        "MRN {account}. {name} admitted on {date} with chest pain; discharged home to {city}.",
        "Referred by Dr. {last} in {city}. SSN on file {ssn}. Insurance account {account}.",
        "Seen with daughter {name} ({phone}). Next visit {date}.",
        "{name} reports dizziness for several days. Emergency contact {name}, {phone}.",
        "Pt is a 67 y/o M from {country}, moved to {city} in {date}. Spouse: {name}.",
    ],
}

HELDOUT_TEMPLATES: dict[str, list[str]] = {
    "ticket": [
        "Order placed by {name}, card {card}, ship to {address}. Contact {phone}.",
        "i spoke with {lname} yesterday and she said the refund went to {iban}",
        "Account {account} belongs to {name}; last login {date} from {ip}.",
        "Escalation: {first} {last} at {email} says {url} shows someone else's data.",
    ],
    "email": [
        "Good morning {first},\nI'll be in {city} until {date}; my mobile is {phone}.\n"
        "Cheers, {name}",
        "Our new office: {address}. Please update your records, {name}.",
        "Hi all, {lname} and {lname} from the {city} branch will join on {date}.",
    ],
    "clinical": [
        "Visit note {date}: {name} (SSN {ssn}) presents with cough. Home: {address}.",
        "Called pt at {phone}, no answer. Left message for {name}. Record {account}.",
        "Transferred from {city}, {country}. Card on file {card} for co-pay.",
    ],
}

# PII-free sentences (written before tuning). Many contain vague time expressions, numbers,
# measurements and capitalised non-names that a careless recognizer would redact.
NEGATIVES = [
    "I called this morning but nobody answered.",
    "We have been customers for several years and never had this problem.",
    "Friday works best for me.",
    "The app crashed three times yesterday evening.",
    "Order total was $1,249.99 for 3 items.",
    "Version 2.14.3 fixed the crash on start-up.",
    "Please reply within 48 hours.",
    "Take 2 tablets every 6 hours with food.",
    "BP 128/82, HR 76, temp 98.6F.",
    "The parcel weighs 2.5 kg and measures 30 x 20 x 10 cm.",
    "Error code 0x80070005 appears when I log in.",
    "Ticket priority is P2; the SLA is 4 business hours.",
    "We spoke last week about the refund.",
    "Room 12 on the second floor was cold all night.",
    "The invoice lists 1200 units at 4.50 each.",
    "Please restart the router and wait 30 seconds.",
    "The patient reports pain for several weeks.",
    "Follow up in two weeks.",
    "Dose increased to 20 mg daily.",
    "My order arrived two days late.",
    "See you on Monday!",
    "During the winter the heating fails every few days.",
    "Will you mark the ticket as resolved?",
    "Please bill the company account instead of my card.",
    "I hope the new release will fix it.",
    "The Premium plan includes Priority Support and a dedicated manager.",
    "Tracking shows the parcel left the depot at 7:45 this morning.",
    "Our team grew from 12 to 45 people over the years.",
    "The meeting moved to next Tuesday afternoon.",
    "Labs pending; recheck potassium in 3 days.",
    "The coupon code SAVE20 did not work at checkout.",
    "Since last spring the battery drains within a few hours.",
    "Reset your password from the settings page.",
    "No known drug allergies. Non-smoker.",
    "It took about 15 minutes to get through to an agent.",
    "Weekends are busy, so expect a delay of one or two days.",
    "The firmware update to 4.2 bricked two of our 250 devices.",
    "Patient denies fever overnight.",
    "The discount applies to orders above 100 euros.",
    "Thanks again, have a great weekend!",
]

# A few real cities and countries. The held-out list is used only by held-out templates.
DEV_CITIES = [
    "Chicago",
    "Boston",
    "Seattle",
    "Denver",
    "Austin",
    "Atlanta",
    "Phoenix",
    "Portland",
    "London",
    "Manchester",
    "Leeds",
    "Bristol",
    "Glasgow",
    "Dublin",
    "Berlin",
    "Munich",
    "Hamburg",
    "Cologne",
    "Paris",
    "Lyon",
    "Marseille",
    "Madrid",
    "Barcelona",
    "Valencia",
    "Rome",
    "Milan",
    "Naples",
    "Amsterdam",
    "Rotterdam",
    "Warsaw",
    "Krakow",
    "Prague",
    "Vienna",
    "Zurich",
    "Geneva",
    "Stockholm",
    "Oslo",
    "Helsinki",
    "Lisbon",
    "Porto",
    "Toronto",
    "Vancouver",
    "Montreal",
    "Sydney",
    "Melbourne",
    "Mumbai",
    "Delhi",
    "Bangalore",
    "Tokyo",
    "Osaka",
    "Seoul",
    "Shanghai",
    "Lagos",
    "Nairobi",
    "Cairo",
    "Istanbul",
    "Mexico City",
    "Sao Paulo",
    "Buenos Aires",
    "San Francisco",
    "Los Angeles",
    "New York",
]
HELDOUT_CITIES = [
    "Minneapolis",
    "Baltimore",
    "Nashville",
    "Sacramento",
    "Edinburgh",
    "Cardiff",
    "Bremen",
    "Leipzig",
    "Toulouse",
    "Bordeaux",
    "Seville",
    "Bologna",
    "Utrecht",
    "Gdansk",
    "Brno",
    "Gothenburg",
    "Bergen",
    "Tampere",
    "Calgary",
    "Ottawa",
    "Brisbane",
    "Perth",
    "Pune",
    "Chennai",
    "Kyoto",
    "Busan",
    "Accra",
    "Kampala",
    "Izmir",
    "Guadalajara",
    "Lima",
    "Bogota",
]
COUNTRIES = [
    "Germany",
    "France",
    "Spain",
    "Italy",
    "Poland",
    "the Netherlands",
    "Sweden",
    "Norway",
    "Finland",
    "Portugal",
    "Ireland",
    "Canada",
    "Mexico",
    "Brazil",
    "Argentina",
    "India",
    "Japan",
    "South Korea",
    "China",
    "Nigeria",
    "Kenya",
    "Egypt",
    "Turkey",
    "Australia",
    "Czech Republic",
    "Austria",
    "Switzerland",
    "Greece",
    "Vietnam",
    "the United Kingdom",
]

NAME_LOCALES = [
    "en_US",
    "en_GB",
    "en_IN",
    "de_DE",
    "fr_FR",
    "es_MX",
    "it_IT",
    "pl_PL",
    "nl_NL",
    "pt_BR",
    "tr_TR",
    "sv_SE",
    "cs_CZ",
    "fi_FI",
    "yo_NG",
    "hu_HU",
    "ga_IE",
    "ja_JP",
    "zh_CN",
]
# Weight English-language locales a little higher, as in an English-language corpus.
NAME_LOCALE_WEIGHTS = [4, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

US_STATES = [
    ("IL", "Illinois"),
    ("MA", "Massachusetts"),
    ("WA", "Washington"),
    ("CO", "Colorado"),
    ("TX", "Texas"),
    ("GA", "Georgia"),
    ("AZ", "Arizona"),
    ("OR", "Oregon"),
    ("OH", "Ohio"),
    ("NY", "New York"),
    ("CA", "California"),
    ("FL", "Florida"),
    ("PA", "Pennsylvania"),
    ("MI", "Michigan"),
    ("NC", "North Carolina"),
    ("VA", "Virginia"),
    ("MN", "Minnesota"),
]
US_TOWNS = [
    "Springfield",
    "Riverside",
    "Fairview",
    "Franklin",
    "Greenville",
    "Bristol",
    "Clinton",
    "Madison",
    "Georgetown",
    "Salem",
    "Dayton",
    "Evanston",
    "Cambridge",
    "Boulder",
    "Tacoma",
    "Plano",
    "Tempe",
    "Eugene",
    "Akron",
    "Albany",
    "Pasadena",
    "Tampa",
    "Erie",
    "Ann Arbor",
]
STREET_NAMES = [
    "Oak",
    "Maple",
    "Cedar",
    "Pine",
    "Elm",
    "Washington",
    "Lincoln",
    "Main",
    "Park",
    "Lake",
    "Hill",
    "Sunset",
    "Highland",
    "Church",
    "Mill",
    "River",
    "Spring",
    "Jefferson",
    "Madison",
    "Franklin",
    "Chestnut",
    "Walnut",
    "Willow",
    "Meadow",
    "Forest",
    "Ridge",
    "Valley",
    "Orchard",
    "Harbor",
    "Martin Luther King Jr",
    "Saint Andrews",
    "Broad",
    "Market",
    "5th",
    "42nd",
    "Old Mill",
    "Kingsley",
    "Victoria",
    "Albert",
    "Baker",
    "Green",
    "Station",
    "Cherry Blossom",
    "Prospect",
    "Magnolia",
    "Dogwood",
    "Birch",
    "Sycamore",
]
US_SUFFIXES = [
    "Street",
    "St",
    "St.",
    "Avenue",
    "Ave",
    "Ave.",
    "Boulevard",
    "Blvd",
    "Road",
    "Rd",
    "Lane",
    "Ln",
    "Drive",
    "Dr",
    "Court",
    "Ct",
    "Way",
    "Place",
    "Pl",
    "Terrace",
    "Circle",
    "Parkway",
]
UK_SUFFIXES = ["Road", "Street", "Lane", "Close", "Crescent", "Gardens", "Avenue", "Grove"]
UK_TOWNS = ["London", "Leeds", "Bristol", "Oxford", "York", "Bath", "Norwich", "Sheffield"]
DE_STREETS = [
    "Hauptstraße",
    "Bahnhofstraße",
    "Schillerstraße",
    "Goethestraße",
    "Lindenweg",
    "Gartenstrasse",
    "Berliner Allee",
    "Am Marktplatz",
    "Kirchgasse",
    "Mozartstraße",
]
DE_TOWNS = ["Berlin", "München", "Hamburg", "Köln", "Frankfurt am Main", "Stuttgart"]
FR_STREETS = [
    "rue des Lilas",
    "avenue Victor Hugo",
    "boulevard Saint-Michel",
    "rue de la République",
    "place Bellecour",
    "rue du Faubourg Saint-Antoine",
    "allée des Tilleuls",
]
FR_TOWNS = ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille"]
AU_STREETS = ["Smith St", "George Street", "Chapel St", "Brunswick Street", "Ocean Parade"]
AU_TOWNS = [("Fitzroy", "VIC"), ("Surry Hills", "NSW"), ("Fortitude Valley", "QLD")]
CA_TOWNS = [("Toronto", "ON"), ("Ottawa", "ON"), ("Calgary", "AB"), ("Halifax", "NS")]
NL_STREETS = ["Keizersgracht", "Prinsengracht", "Damrak", "Oudegracht", "Coolsingel"]
NL_TOWNS = ["Amsterdam", "Utrecht", "Rotterdam", "Den Haag"]

EMAIL_DOMAINS = [
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "example.org",
    "mail.example.co.uk",
    "web.de",
    "acme-corp.io",
    "uni-hamburg.de",
    "orange.fr",
    "company.com.au",
    "proton.me",
]
URL_HOSTS = [
    "www.shop-example.com",
    "portal.acme-corp.io",
    "help.example.org",
    "example.net",
    "status.mycloud.dev",
    "intranet.company.co.uk",
    "docs.example.com",
    "bit.ly",
]
US_AREA_CODES = [
    "212",
    "646",
    "415",
    "312",
    "617",
    "303",
    "713",
    "206",
    "404",
    "305",
    "602",
    "503",
    "937",
    "216",
    "718",
    "202",
    "214",
    "512",
    "702",
    "813",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """Random digits after ``prefix`` up to ``length``, with a valid Luhn check digit."""
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def _group(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(digits[i : i + size])
        i += size
    if i < len(digits):
        out.append(digits[i:])
    return sep.join(part for part in out if part)


class _Values:
    """Value generators sharing one seeded RNG and one seeded Faker per locale."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers: dict[str, Faker] = {}
        for i, loc in enumerate(NAME_LOCALES):
            fake = Faker(loc)
            fake.seed_instance(seed + i)
            self.fakers[loc] = fake

    # -- names --------------------------------------------------------------------------------
    def _first_last(self) -> tuple[str, str]:
        loc = self.rng.choices(NAME_LOCALES, weights=NAME_LOCALE_WEIGHTS)[0]
        fake = self.fakers[loc]
        if loc in ("ja_JP", "zh_CN"):
            return fake.first_romanized_name(), fake.last_romanized_name()
        return fake.first_name(), fake.last_name()

    def full_name(self, *, lower: bool = False) -> str:
        first, last = self._first_last()
        r = self.rng.random()
        if not lower and r < 0.08:
            mid = self.rng.choice(string.ascii_uppercase)
            name = f"{first} {mid}. {last}"
        else:
            name = f"{first} {last}"
        if lower or self.rng.random() < 0.15:
            name = name.lower()
        return name

    def first(self) -> str:
        name = self._first_last()[0]
        return name.lower() if self.rng.random() < 0.1 else name

    def last(self) -> str:
        return self._first_last()[1]

    # -- contact ------------------------------------------------------------------------------
    def email(self) -> str:
        first, last = self._first_last()

        def norm(s: str) -> str:
            s = s.lower()
            for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("ł", "l")):
                s = s.replace(a, b)
            return re.sub(r"[^a-z]", "", s.encode("ascii", "ignore").decode()) or "user"

        f, la = norm(first), norm(last)
        local = self.rng.choice(
            [
                f"{f}.{la}",
                f"{f[0]}{la}{self.rng.randint(1, 99)}",
                f"{f}_{la}",
                f"{la}.{f}+support",
                f"{f}{self.rng.randint(1970, 2005)}",
            ]
        )
        addr = f"{local}@{self.rng.choice(EMAIL_DOMAINS)}"
        return addr.title() if self.rng.random() < 0.05 else addr

    def phone(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.62:
            area = rng.choice(US_AREA_CODES)
            exch = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(2, 9)}"
            line = f"{rng.randint(0, 9999):04d}"
            fmt = rng.choice(
                [
                    "{a}-{e}-{l}",
                    "({a}) {e}-{l}",
                    "{a}.{e}.{l}",
                    "+1 {a} {e} {l}",
                    "+1-{a}-{e}-{l}",
                    "1-{a}-{e}-{l}",
                    "001-{a}-{e}-{l}",
                    "{a}-{e}-{l} ext. {x}",
                    "({a}) {e}-{l} x{x}",
                    "+1 ({a}) {e}-{l}",
                    "{a}{e}{l}",
                ]
            )
            return fmt.format(a=area, e=exch, l=line, x=rng.randint(10, 9999))
        if kind < 0.75:
            # UK: London landline or mobile.
            if rng.random() < 0.5:
                num = f"20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            else:
                num = f"7{rng.randint(400, 999)} {rng.randint(100000, 999999)}"
            return f"+44 {num}" if rng.random() < 0.5 else f"0{num}"
        if kind < 0.84:
            num = f"30 {rng.randint(1000000, 9999999)}"
            return f"+49 {num}" if rng.random() < 0.6 else f"0{num}"
        if kind < 0.92:
            pairs = " ".join(f"{rng.randint(0, 99):02d}" for _ in range(4))
            return f"+33 {rng.randint(1, 7)} {pairs}"
        return f"+91 9{rng.randint(1000, 9999)} {rng.randint(10000, 99999)}"

    # -- places -------------------------------------------------------------------------------
    def city(self, heldout: bool) -> str:
        return self.rng.choice(HELDOUT_CITIES if heldout else DEV_CITIES)

    def country(self) -> str:
        return self.rng.choice(COUNTRIES)

    def _us_street(self) -> str:
        rng = self.rng
        num = str(
            rng.choice([rng.randint(1, 99), rng.randint(100, 9999), rng.randint(10000, 99999)])
        )
        direction = rng.choice(["", "", "", "N ", "S ", "E ", "W ", "NE "])
        street = f"{num} {direction}{rng.choice(STREET_NAMES)} {rng.choice(US_SUFFIXES)}"
        r = rng.random()
        if r < 0.15:
            street += f", Apt {rng.randint(1, 30)}{rng.choice(['', 'A', 'B', 'C'])}"
        elif r < 0.25:
            street += f" Suite {rng.randint(100, 990)}"
        elif r < 0.32:
            street += f" #{rng.randint(1, 400)}"
        elif r < 0.37:
            street += f", Unit {rng.randint(1, 40)}"
        return street

    def address(self, heldout: bool) -> str:
        rng = self.rng
        styles = ["US", "US", "US", "US_street", "UK", "DE", "FR"]
        if heldout:
            styles += ["AU", "CA", "NL"]
        style = rng.choice(styles)
        if style == "US":
            abbr, full = rng.choice(US_STATES)
            state = abbr if rng.random() < 0.8 else full
            zip_code = f"{rng.randint(10000, 99999)}"
            if rng.random() < 0.1:
                zip_code += f"-{rng.randint(1000, 9999)}"
            sep = rng.choice([", ", ", ", "\n"])
            addr = f"{self._us_street()}{sep}{rng.choice(US_TOWNS)}, {state} {zip_code}"
        elif style == "US_street":
            addr = self._us_street()
        elif style == "UK":
            pc = (
                f"{rng.choice(['NW', 'SE', 'LS', 'BS', 'M', 'OX', 'YO'])}{rng.randint(1, 20)} "
                f"{rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
                f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            )
            flat = f"Flat {rng.randint(1, 12)}, " if rng.random() < 0.25 else ""
            num = f"{rng.randint(1, 250)}{rng.choice(['', '', '', 'A', 'B'])}"
            street = f"{rng.choice(STREET_NAMES)} {rng.choice(UK_SUFFIXES)}"
            addr = f"{flat}{num} {street}, {rng.choice(UK_TOWNS)} {pc}"
        elif style == "DE":
            addr = (
                f"{rng.choice(DE_STREETS)} {rng.randint(1, 140)}{rng.choice(['', '', 'a'])}, "
                f"{rng.randint(10000, 99999)} {rng.choice(DE_TOWNS)}"
            )
        elif style == "FR":
            addr = (
                f"{rng.randint(1, 120)}{rng.choice(['', '', ' bis'])} {rng.choice(FR_STREETS)}, "
                f"{rng.randint(10, 95)}{rng.randint(0, 999):03d} {rng.choice(FR_TOWNS)}"
            )
        elif style == "AU":
            town, st = rng.choice(AU_TOWNS)
            unit = f"Unit {rng.randint(1, 20)}, " if rng.random() < 0.4 else ""
            street = f"{rng.randint(1, 300)} {rng.choice(AU_STREETS)}"
            addr = f"{unit}{street}, {town} {st} {rng.randint(2000, 4999)}"
        elif style == "CA":
            town, prov = rng.choice(CA_TOWNS)
            pc = (
                f"{rng.choice('KLMNT')}{rng.randint(0, 9)}{rng.choice('ABCEGHJ')} "
                f"{rng.randint(0, 9)}{rng.choice('ABCEGHJ')}{rng.randint(0, 9)}"
            )
            addr = f"{self._us_street()}, {town}, {prov} {pc}"
        else:  # NL
            addr = (
                f"{rng.choice(NL_STREETS)} {rng.randint(1, 400)}, {rng.randint(1000, 9999)} "
                f"{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')} "
                f"{rng.choice(NL_TOWNS)}"
            )
        if rng.random() < 0.1:
            addr = addr.lower()
        return addr

    def street(self) -> str:
        s = self._us_street()
        return s.lower() if self.rng.random() < 0.15 else s

    # -- dates --------------------------------------------------------------------------------
    def date(self) -> str:
        rng = self.rng
        y, m, d = rng.randint(1940, 2025), rng.randint(1, 12), rng.randint(1, 28)
        month = MONTHS[m - 1]
        suffix = "th" if d in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
        return rng.choice(
            [
                f"{month} {d}, {y}",
                f"{d} {month} {y}",
                f"{month[:3]} {d}{suffix}, {y}",
                f"{m:02d}/{d:02d}/{y}",
                f"{m}/{d}/{y % 100:02d}",
                f"{y}-{m:02d}-{d:02d}",
                f"{d:02d}.{m:02d}.{y}",
                f"{month} {d}{suffix}",
                f"{month} {y}",
                f"{d}-{month[:3].upper()}-{y}",
            ]
        )

    # -- identifiers --------------------------------------------------------------------------
    def card(self) -> str:
        rng = self.rng
        kind = rng.choice(
            [
                "visa16",
                "visa19",
                "visa13",
                "mc5",
                "mc2",
                "amex",
                "disc",
                "maestro12",
                "maestro16",
                "jcb",
                "diners",
            ]
        )
        prefix, length, groups = {
            "visa16": ("4", 16, [4, 4, 4, 4]),
            "visa19": ("4", 19, [4, 4, 4, 4, 3]),
            "visa13": ("4", 13, [4, 3, 3, 3]),
            "mc5": (f"5{rng.randint(1, 5)}", 16, [4, 4, 4, 4]),
            "mc2": (str(rng.randint(2221, 2720)), 16, [4, 4, 4, 4]),
            "amex": (rng.choice(["34", "37"]), 15, [4, 6, 5]),
            "disc": ("6011", 16, [4, 4, 4, 4]),
            "maestro12": (rng.choice(["6759", "5018", "6304", "5020"]), 12, [4, 4, 4]),
            "maestro16": (rng.choice(["6759", "5018", "6304"]), 16, [4, 4, 4, 4]),
            "jcb": (str(rng.randint(3528, 3589)), 16, [4, 4, 4, 4]),
            "diners": (rng.choice(["36", "38"]), 14, [4, 6, 4]),
        }[kind]
        digits = _luhn_complete(prefix, length, rng)
        sep = rng.choice([" ", "-", "", " "])
        return digits if not sep else _group(digits, groups, sep)

    def ssn(self) -> str:
        rng = self.rng
        area = rng.choice([n for n in range(1, 900) if n != 666])
        group, serial = rng.randint(1, 99), rng.randint(1, 9999)
        sep = rng.choice(["-", "-", "-", " ", ""])
        return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"

    def iban(self) -> str:
        rng = self.rng

        def digits(n: int) -> str:
            return "".join(rng.choice(string.digits) for _ in range(n))

        def upper(n: int) -> str:
            return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))

        country, bban = rng.choice(
            [
                ("DE", lambda: digits(18)),
                ("GB", lambda: upper(4) + digits(14)),
                ("FR", lambda: digits(10) + upper(1) + digits(10) + digits(2)),
                ("ES", lambda: digits(20)),
                ("NL", lambda: upper(4) + digits(10)),
                ("IT", lambda: upper(1) + digits(10) + digits(12)),
                ("CH", lambda: digits(17)),
                ("PL", lambda: digits(24)),
                ("BE", lambda: digits(12)),
                ("AT", lambda: digits(16)),
            ]
        )
        b = bban()
        numeric = "".join(str(int(ch, 36)) for ch in b + country + "00")
        check = 98 - int(numeric) % 97
        iban = f"{country}{check:02d}{b}"
        if rng.random() < 0.6:
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban

    def ip(self) -> str:
        rng = self.rng
        if rng.random() < 0.8:
            first = rng.choice([rng.randint(1, 223), 10, 192, 172])
            return ".".join([str(first)] + [str(rng.randint(0, 255)) for _ in range(3)])
        groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
        if rng.random() < 0.5:
            return f"2001:db8::{groups[6]}:{groups[7]}"
        return ":".join(groups)

    def url(self) -> str:
        rng = self.rng
        host = rng.choice(URL_HOSTS)
        path = rng.choice(
            ["", "/login", "/orders/55812", "/help/article?id=4471", "/u/3xYz9", "/reset#step2"]
        )
        scheme = rng.choice(["https://", "https://", "http://", ""])
        if not scheme and not host.startswith("www."):
            scheme = "https://"
        return f"{scheme}{host}{path}"

    def account(self) -> str:
        rng = self.rng
        return rng.choice(
            [
                "".join(rng.choice(string.digits) for _ in range(rng.randint(8, 12))),
                f"{rng.randint(1000, 9999)}-{rng.randint(100, 999)}-{rng.randint(100, 999)}",
                f"{rng.choice(['AC', 'XK', 'POL', 'MBR'])}-{rng.randint(100000, 9999999)}",
                f"{rng.randint(10, 99)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
            ]
        )


_SLOTS: dict[str, tuple[str, Callable[[_Values, bool], str]]] = {
    "name": ("PERSON", lambda v, h: v.full_name()),
    "lname": ("PERSON", lambda v, h: v.full_name(lower=True)),
    "first": ("PERSON", lambda v, h: v.first()),
    "last": ("PERSON", lambda v, h: v.last()),
    "email": ("EMAIL_ADDRESS", lambda v, h: v.email()),
    "phone": ("PHONE_NUMBER", lambda v, h: v.phone()),
    "address": ("STREET_ADDRESS", lambda v, h: v.address(h)),
    "street": ("STREET_ADDRESS", lambda v, h: v.street()),
    "city": ("LOCATION", lambda v, h: v.city(h)),
    "country": ("LOCATION", lambda v, h: v.country()),
    "date": ("DATE_TIME", lambda v, h: v.date()),
    "card": ("CREDIT_CARD", lambda v, h: v.card()),
    "ssn": ("US_SSN", lambda v, h: v.ssn()),
    "iban": ("IBAN_CODE", lambda v, h: v.iban()),
    "ip": ("IP_ADDRESS", lambda v, h: v.ip()),
    "url": ("URL", lambda v, h: v.url()),
    "account": ("ACCOUNT_NUMBER", lambda v, h: v.account()),
}
_SLOT_RE = re.compile(r"\{(\w+)\}")


def _fill(template: str, values: _Values, heldout: bool) -> tuple[str, list[Span]]:
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0
    length = 0
    for m in _SLOT_RE.finditer(template):
        literal = template[pos : m.start()]
        parts.append(literal)
        length += len(literal)
        entity, make = _SLOTS[m.group(1)]
        value = make(values, heldout)
        spans.append(Span(length, length + len(value), entity))
        parts.append(value)
        length += len(value)
        pos = m.end()
    parts.append(template[pos:])
    return "".join(parts), spans


def build_eval_set(n: int = 1500, seed: int = 20240603) -> list[Example]:
    """Generate ``n`` labelled examples, the same ones for the same ``n`` and ``seed``.

    About a fifth are negatives (one to three PII-free sentences); about half of the others
    get a PII-free sentence before or after the template, so precision is measured on
    realistic surrounding text too.
    """
    values = _Values(seed)
    rng = values.rng
    pool: list[tuple[str, str, str, bool]] = []
    for split, templates in (("dev", DEV_TEMPLATES), ("heldout", HELDOUT_TEMPLATES)):
        for domain, items in templates.items():
            for i, tpl in enumerate(items):
                pool.append((f"{split}-{domain}-{i}", domain, tpl, split == "heldout"))
    out: list[Example] = []
    for _ in range(n):
        if rng.random() < 0.2:
            text = " ".join(rng.sample(NEGATIVES, rng.randint(1, 3)))
            out.append(Example(text, (), "negative", "negative", "dev"))
            continue
        tid, domain, tpl, heldout = rng.choice(pool)
        text, spans = _fill(tpl, values, heldout)
        r = rng.random()
        if r < 0.25:
            prefix = rng.choice(NEGATIVES) + " "
            text = prefix + text
            spans = [Span(s.start + len(prefix), s.end + len(prefix), s.entity_type) for s in spans]
        elif r < 0.5:
            text = text + " " + rng.choice(NEGATIVES)
        out.append(Example(text, tuple(spans), domain, tid, "heldout" if heldout else "dev"))
    return out


def main() -> None:
    examples = build_eval_set()
    counts: Counter[str] = Counter(s.entity_type for ex in examples for s in ex.spans)
    splits: Counter[str] = Counter(ex.split for ex in examples)
    print(f"{len(examples)} examples, splits {dict(splits)}")
    for entity in ENTITY_TYPES:
        print(f"  {entity:15s} {counts[entity]:5d}")
    for ex in examples[:8]:
        print("-" * 60)
        print(ex.text)
        for s in ex.spans:
            print(f"    {s.entity_type}: {ex.text[s.start : s.end]!r}")


if __name__ == "__main__":
    main()
