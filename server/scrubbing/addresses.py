"""Postal addresses by their layout: street, unit, town, postcode and country lines together.

The street patterns in :mod:`.recognizers` need a street suffix they know ("Street", "Allee",
"rue"), so on text nobody here wrote most addresses were lost: the house number after the
street ("Bécsi utca 35.", "Õli 68"), both ("0189 Rue des Buissons 386"), "Suite 559" and
"Apt. 474" lines, military addresses ("PSC 3412, Box 5242 / APO AA 29282"), and every postcode
("Belgium 65601", "NJ 06666"). An address is recognised here by what surrounds each piece
rather than by a list of street words in every language:

* The text is cut into segments at line breaks and commas, and each segment is classified:
  a *street* (a house number and words, or words and a house number), a *unit* ("Suite 559",
  "Apt. 474", "PO Box 12", "Unit 3848 Box 3726"), a *military* line, a *postal* line (a
  postcode with a town, region or country), a *country* and a *town* (one to four capitalised
  words).
* Consecutive segments form a block, and a block is an address when it holds a street, unit
  or military line *and* another address line (unit, postal, country, military). Streets,
  units and military lines become STREET_ADDRESS, towns and countries LOCATION, postcodes
  POSTCODE. A postal line with a country or a US state is an address piece on its own
  ("Laurel Springs, NJ 06666").
* Within a sentence, a house number, capitalised words and a second number ("send it to 511
  Rebbåsbakken 48 Suite 372") or a residence cue ("lives on Castelao 66") make an address.
* Layouts of other countries read the same way (tuned on Faker's 52 locale layouts, see
  benchmarks/README): a postal line *before* the street ("125009, Moscow, Tverskaya 7"), the
  number in a field of its own ("Rua Augusta, 274", "12, MG Road", "57/138, Balay Circle") or
  on the line above the street, a house range ("Ασίνης 92-32"), an ordinal in the name
  ("сквер Деревообробний 3-й"), "S/N" for no number, street-type words in lower
  case ("rue du Marché 17"), and names in scripts without capitals (Hebrew, Indic, Thai),
  which count as capitalised. A town marked as one ("ք. Արմավիր", "Binələr kəndi") is an
  address line as a postcode is.
* Where a script has no capitals to go by, its own street words and house-number forms are
  the cue, wherever they stand: Japanese blocks ("轟18丁目18番15号"), Chinese house numbers
  ("正義路53號之0"), Korean roads after a district ("정선군 가락1거리 648-76"), Georgian,
  Arabic, Thai and Azerbaijani street words ("ტატიშვილის ქ. 33", "950 شارع بن سعيد"), and
  Vietnamese streets before a ward or province word ("Số 3/94 phố số 27 Xã ..."); likewise
  Argentine "N°" lines with their eight-digit or CPA postcode ("Calle Alem N° 24 30001368
  Resistencia").
* Some layouts have a cue of their own, and their patterns run only where it stands: the
  Chilean "Región" line with its seven-digit postcode, Colombian grid streets with the postcode
  and town after them, Irish Eircodes after a street-type word, Malaysian house numbers before
  "Jalan" or "Lorong", Persian street words and house-number-first blocks, Hebrew street words
  and the Israeli street, town and seven-digit postcode.

Years never count as house numbers, and a version ("Python 3", "Windows 10") is not an
address unless another address line stands next to it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from presidio_analyzer import LocalRecognizer
from privsynth.server.scrubbing.not_personal import ORGANISATION_WORD, not_personal
from privsynth.server.scrubbing.results import make_result

__all__ = ["AddressBlockRecognizer", "countries"]

_NATIVE_COUNTRIES = (
    "USA", "U.S.A.", "UK", "U.K.", "United States", "United Kingdom", "Deutschland", "España",
    "Italia", "Nederland", "Sverige", "Norge", "Danmark", "Suomi", "Polska", "Österreich",
    "Schweiz", "Suisse", "Svizzera", "België", "Belgique", "Magyarország", "Česko",
    "Česká republika", "Slovensko", "Slovenija", "Hrvatska", "Eesti", "Latvija", "Lietuva",
    "Ísland", "Éire", "Ελλάδα", "Κύπρος", "Россия", "Україна", "Türkiye", "Brasil", "México",
    "Cyprus (Greek)", "Cyprus (Turkish)",
)  # fmt: skip


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    """Case-folded country names: Faker's English list plus native and short forms."""
    from faker.providers.address.en import Provider

    return frozenset(c.casefold() for c in (*Provider.countries, *_NATIVE_COUNTRIES))


_CA_PROVINCE_CODES = frozenset(
    {"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"}
)
_CA_CODE = re.compile(r"[A-Z]\d[A-Z]\s?\d[A-Z]\d")
_US_STATE_CODES = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "DC",
        "PR",
    ]
)
_YEAR = re.compile(r"(?:1[89]|20)\d\d")
# The rest of a word: letters, Indic and Thai vowel signs and joiners (combining marks, which
# Python's \w leaves out), apostrophes, dots and hyphens.
_WORD_REST = r"[\w'’.\-\u0300-\u036f\u0900-\u0dff\u0e00-\u0e7f\u200c\u200d]*"
_CAPWORD = rf"(?:[^\W\d_]{_WORD_REST})"
_UNIT = re.compile(
    r"(?i)^(?:(?:apt|apartment|suite|ste|unit|flat|floor|fl|room|rm|bldg|building|level|tower"
    r"|block|wing|plot\s+no|h\.?\s?no|house\s+no|door\s+no|ward\s+no)"
    r"\.?\s*#?\s*[\w-]{1,6}(?:,?\s+box\s+\d{1,6})?|(?:p\.?\s?o\.?\s+)?box\s+\d{1,6}"
    r"|(?:psc|cmr)\s+\d{1,6}|(?:postfach|postboks|postbox|postbus|bo[iî]te\s+postale|b\.?p\.?"
    r"|case\s+postale|apartado(?:\s+de\s+correos)?|casilla(?:\s+de\s+correos?)?|caixa\s+postal)"
    r"\s+\d{1,6}"
    # A house and its flat or building as post-Soviet addresses write them: "д. 7/2 к. 7",
    # "буд. 962 кв. 9", "d. 5, kv. 12".
    r"|(?:д\.?|дом|буд\.?|d\.|dom|bud\.)\s*\d{1,5}[а-яa-z]?(?:/\d{1,5})?"
    r"(?:,?\s+(?:к|кв|корп|стр|оф|kv|k|korp|str|of)\.?\s*\d{1,5}[а-яa-z]?(?:/\d{1,5})?)*"
    # An Armenian flat: "բն. 92".
    r"|բն\.?\s*\d{1,4})$"
)
_MILITARY = re.compile(
    r"^(?:(?:USS|USNS|USNV|USCGC)\s+[A-Z][\w'’-]+|(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5})$"
)
# "Apt. 312", "Suite 534" after a street on the same line: "4241 Rooseveltlaan 110 Apt. 312".
_UNIT_AFTER = (
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|Fl|Dpto|Depto|Piso|Interior|Int|Edif"
    r"|Bl|Sc|Ap|Et|Esc|Apto|Oficina|Of(?=\.))\.?\s*#?\s*\d{1,6}[A-Za-z]?)"
)
# A house number as streets across Europe and Latin America write it: "55/89" (house and
# flat), "7-2", "N° 7251", "Nr. 709".
_HOUSE = r"(?:(?:N[°º]|Nr\.|No\.)\s?)?\d{1,5}[a-zA-Z]?(?:[/-]\d{1,5}[a-zA-Z]?)?"
_STREET_NUMBER_FIRST = re.compile(
    rf"^(\d{{1,6}}(?:-?[a-zA-Z])?)(?:/\d{{1,5}}[a-zA-Z]?)?(?:\s+\d{{1,5}}[a-z]?)?\s+{_CAPWORD}"
    rf"(?:\s+{_CAPWORD}){{0,5}}"
    rf"(?:\s+\d{{1,5}}[a-zA-Z]?\.?)?{_UNIT_AFTER}{{0,2}}$"
)
_STREET_NUMBER_LAST = re.compile(
    rf"^(?:{_CAPWORD}\s+){{0,4}}{_CAPWORD}\s+{_HOUSE}\.?(?:\s+\d{{1,5}})?{_UNIT_AFTER}{{0,4}}$"
)
# Street-type words written in lower case in their language ("ul. Miła 131", "πλατεία
# Καραισκάκη 262", "Trg revolucije 33", "avenue Ferdinand de Lesseps"): with one of them a
# street needs no capitalised first word.
_LATIN_STREET_WORD = (
    r"(?:ul|u|út|utca|ulica|ulitsa|al|aleja|os|pl|plac|rue|avenue|av|via|viale|vicolo|piazza"
    r"|calle|c/|carrer|rua|rúa|avenida|trg|πλατεία|οδός|λεωφόρος|odos|str|strada|gate|gata|vej"
    r"|vei|veien|laan|straat|weg|plein|chemin|boulevard|bd|allée|place|route|camino|paseo"
    r"|travessa|largo|náměstí|nám|ulice|tie|katu|gatan|vägen)\.?"
)
_STREET_WORD_RE = re.compile(
    rf"(?i:{_LATIN_STREET_WORD}|strada|intrarea|bulevardul|aleea|calea|splaiul|[șs]oseaua|drumul"
    r"|pia[țt]a|fund[ăa]tura|prelungirea|pasajul|b-dul|jalan|jln"
    r"|lorong|leoforos|λεωφ\.?|praça|estrada|alameda|pasaje|carretera|ronda|travesía|glorieta"
    r"|ladeira|rodovia|viela|beco"
    r"|diagonal|diag\.?|blv\.?"
    r"|plaza|ulitsa|prospekt|проспект|улица|ул\.?|вулиця|вул\.?|provulok|rruga|sokak|cadde"
    r"|caddesi|sokağı|бул\.?|бульвар|пер\.?|переулок|провулок|алл\.?|аллея|наб\.?|набережная"
    r"|набережна|ш\.?|шоссе|шосе|пр\.?|пр-т|площадь|площа|пл\.?|сквер|узвіз|парк|бульв\.?)"
)
_PARTICLES = frozenset(
    {
        "de", "la", "le", "les", "du", "des", "di", "da", "do", "dos", "das", "del", "della",
        "van", "von", "der", "den", "het", "ter", "el", "y", "e", "i",
    }
)  # fmt: skip
_UPPER_CLASS = "A-ZÀ-ÞΑ-ΩА-ЯĀ-ſ"
# Where a proper name may start: a capital, or a letter of a script without case (Hebrew,
# Arabic, Indic, Thai, Georgian, CJK, Hangul), whose street and town names have no capital to
# show; Armenian capitals too.
_NAME_START = (
    _UPPER_CLASS + "\u0531-\u0556\u0590-\u08ff\u0900-\u0dff\u0e00-\u0eff\u10d0-\u10ff"
    "\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af"
)


def _capitalised(word: str) -> bool:
    """Whether ``word`` starts as a proper name does: a capital or a caseless letter."""
    return word[:1].isupper() or (word[:1].isalpha() and not word[:1].islower())


_PARTICLE = rf"(?:\s+(?:{'|'.join(sorted(_PARTICLES))}))*"
# A street-type word, then one to four capitalised words with particles between them.
# An East Slavic ordinal in a street's name: "Деревообробний 3-й", "7-ма Лінія".
_ORDINAL = r"\d{1,2}-[а-яіїє]{1,3}"
_NAMED_STREET = re.compile(
    rf"{_CAPWORD}{_PARTICLE}(?:\s+(?:(?-i:[{_NAME_START}]){_WORD_REST}|{_ORDINAL}){_PARTICLE}){{1,4}}"
)
# A street closing a segment that starts in prose: "... the address of X is 8337 42 Wern Ddu
# Lane", "... lives at 7549 ul. Więckowskiego Stefana 28": a house number, a capitalised or
# street-type word, up to four more words, an optional second number and units; a lower-case
# street word needs a capitalised word after it, "ul. Więckowskiego" (:func:`_named_after`).
_STREET_TAIL = re.compile(
    rf"(?<![\w.,:/#-])(?P<num>\d{{1,6}}[a-zA-Z]?)(?:\s+\d{{1,5}}[a-z]?)?"
    rf"\s+(?P<lead>(?-i:[{_NAME_START}]){_WORD_REST}|(?i:{_LATIN_STREET_WORD}))"
    rf"(?P<name>(?:\s+{_CAPWORD}){{0,4}})(?:\s+\d{{1,5}}[a-zA-Z]?\.?)?"
    rf"(?P<unit>{_UNIT_AFTER}{{0,2}})$"
)
# Postcodes that are letters and digits are distinctive enough to stand alone on a line:
# British ("G6F 3PE"), Canadian ("K1A 0B6") and Irish Eircodes ("H92 5A5V", "D6W 1234").
_ALNUM_CODE = re.compile(
    r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d|[A-Z]\d[\dW]\s?[A-Z\d]{4}"
)
# The Argentine CPA ("C1425ABC"): a province letter, four digits, three letters.
_CPA = r"[A-HJ-NP-Z]\d{4}[A-Z]{3}"
_POSTCODE = (
    r"(?:\d{5}-\d{4}|\d{5}-\d{3}|\d{4}-\d{3}|\d{2}-\d{3}|\d{3}\s\d{2}|\d{4,7}"
    rf"|{_ALNUM_CODE.pattern}|\d{{4}}\s?[A-Z]{{2}}|[A-Z]{{1,3}}-\d{{3,5}}(?:\s\d{{2}})?|{_CPA})"
)
# What may stand before a postcode: "C.P. 06600", "CEP 01310-100", "TK 93253", "PLZ 10115".
_CODE_PREFIX = r"(?:(?:C\.\s?P\.|CP|CEP|T\.?K\.?|Τ\.?Κ\.?|PLZ|PIN)\s*:?\s*)"
# "Belgium 65601", "Laurel Springs, NJ 06666" (comma-split), "HEIMDAL nan 7072",
# "1015 CJ Amsterdam", "Leeds LS6 2AB".
_PAREN = r"(?:\s+\([^()\n]{1,30}\))?"
_POSTAL_AFTER = re.compile(
    rf"^(?:(?P<place>{_CAPWORD}(?:\s+{_CAPWORD}){{0,3}}{_PAREN})\s+)?{_CODE_PREFIX}?"
    rf"(?P<code>{_POSTCODE})$"
)
# "Pune-411013", "India-411014": a town or country and its postcode joined by a dash.
# Indic names carry vowel signs, which are no letters to \w ("अमरोहा-986043").
_DASH_WORD = r"(?:[^\W\d_]|[\u0900-\u0963\u0971-\u0dff])+"
_POSTAL_DASH = re.compile(
    rf"^(?P<place>{_DASH_WORD}(?:\s+{_DASH_WORD}){{0,3}})-(?P<code>\d{{5,6}})$"
)
# "3544 Rappaz (BS)", "70201-330 Ribeiro / AP": a region after the town, in brackets or
# after a slash.
_POSTAL_BEFORE = re.compile(
    # A Brazilian CEP without its dash ("69242562 Porto da Prata / MT") only before a town and
    # its state's letters: eight digits alone are as likely an order or account number.
    rf"^{_CODE_PREFIX}?(?P<code>{_POSTCODE}|\d{{8}}(?=\s[^/\n]{{1,40}}/\s*[A-Z]{{2}}$))"
    rf"\s+(?P<place>{_CAPWORD}(?:{_PARTICLE}\s+{_CAPWORD}){{0,3}}"
    rf"{_PAREN}(?:\s*/\s*[A-Z]{{2}})?)$"
)
_REGION_CODE = re.compile(rf"[{_UPPER_CLASS}]{{2,3}}")
# A postcode written after its country's letters, as European mail long did ("DK-1615
# København V", "A-1021 Wien", "SK-821 01 Bratislava"): an address piece on its own.
_CEPT_PREFIX = re.compile(
    r"(?:A|AL|AND|B|BG|BIH|BY|CH|CY|CZ|D|DK|E|EE|EST|F|FIN|FL|GR|H|HR|I|IRL|IS|L|LT|LV|M|MC|MD"
    r"|MK|N|NL|P|PL|RO|RUS|S|SF|SK|SLO|SRB|UA)-\d{3,5}(?:\s\d{2})?"
)
# A country and postcode opening a segment that goes on as prose.
_POSTAL_LEAD = re.compile(
    rf"^(?P<place>{_CAPWORD}(?:\s+{_CAPWORD}){{0,2}}{_PAREN})\s+(?P<code>{_POSTCODE})(?=[.?!,]?\s|[.?!]$)"
)
_TOWN = re.compile(rf"^{_CAPWORD}(?:{_PARTICLE}[\s-]+{_CAPWORD}){{0,3}}{_PAREN}$")
# A town or village with the word that marks it as one, before the name in Armenian ("ք.
# Արմավիր" town, "գ. Բերքառատ" village) or after it ("Տավուշի մարզ" province, Azerbaijani
# "Binələr kəndi" village, "Pirsaat qəsəbəsi" settlement): an address line as a postcode is.
# The name must be in the marker's script: "ք. test" is no town.
_HY_NAME = r"[\u0531-\u0556][\u0561-\u0587\u0531-\u0556'’-]*"
_AZ_NAME = rf"[A-ZÇƏĞİÖŞÜ]{_WORD_REST}"
_SETTLEMENT = re.compile(
    rf"^(?:(?:ք|գ)\.\s*(?P<after>{_HY_NAME}(?:\s+{_HY_NAME}){{0,2}})"
    rf"|(?P<before>{_HY_NAME}(?:\s+{_HY_NAME}){{0,2}})\s+մարզ"
    rf"|(?P<az>{_AZ_NAME}(?:\s+{_AZ_NAME}){{0,2}})\s+(?:kəndi|qəsəbəsi)"
    # A Chilean region named as one: "Región del Maule", "Región de La Araucanía", "Región de
    # Magallanes y de la Antártica Chilena".
    rf"|(?P<region>Región\s+(?:(?:de|del)\s+)?(?:(?:la|los|las)\s+)?(?-i:[{_UPPER_CLASS}])"
    rf"{_WORD_REST}(?:\s+(?:(?:de|del|y|la|los|las)\s+)*(?-i:[{_UPPER_CLASS}]){_WORD_REST}){{0,4}}))$"
)
# What opens a segment but is not address: quote marks and list bullets, and a field label
# ("Address: Postfach 130", 'address    "Postfach 130' in a locale file, "Anschrift:").
_PREFIX = re.compile(
    r"[\s>|}?*#:%\"'-]*(?P<label>(?i:(?:postal\s+|mailing\s+)?(?:address|addr|adresse|anschrift))"
    r"(?:\s*[:=]\s*|\s+)[\"']?)?"
)
# "511 Rebbåsbakken 48 Suite 372", "437 Wesselényi u. 94. Apt. 817 Öntésmajor Hungary": after a
# unit, the capitalised words that follow (town, region, country) belong to the address. A
# street word in lower case needs a capitalised word after it (:func:`_named_after`).
_INLINE = re.compile(
    r"(?<![\w.,-])(?P<num>\d{1,6})(?:-[A-Z])?[ \t]+(?:\d{1,5}[ \t]+)?"
    rf"(?P<lead>(?-i:[{_NAME_START}]){_WORD_REST}|(?i:{_LATIN_STREET_WORD}))[ \t]+"
    rf"(?P<name>(?:{_CAPWORD}[ \t]+){{0,4}})\d{{1,5}}[a-z]?\b\.?"
    r"(?P<unit>,?[ \t]+(?i:apt|suite|unit|ste)\.?[ \t]*\d{1,5}"
    rf"(?:[ \t]+(?:(?-i:[{_UPPER_CLASS}])[\w'’.-]*|nan)(?=[ \t,.?!]|$)){{0,4}})?"
)
_MONTH_WORD = re.compile(
    r"(?i)\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b\.?\s+(?:\d|$)"
)
_UNIT_TAIL = re.compile(
    r"\b(?:PSC|CMR|Unit|P\.?O\.? Box)\s+\d{1,6}(?:,?\s+Box\s+\d{1,6})?$"
    r"|\b(?:USS|USNS|USNV|USCGC)\s+[A-Z][\w'’-]+$"
)
_MILITARY_HEAD = re.compile(r"^(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}\b")
# "ZIP: 7287", "my zip code is 40200", "Postleitzahl 10115".
_CODE_CUE = re.compile(
    r"(?i)\b(?:zip(?:\s*code)?|post(?:al)?\s*code|postcode|post\s*code|plz|postleitzahl)\b"
    r"(?:\s*(?:is|:|#|no\.?))?\s*(?P<code>(?-i:[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})"
    r"|(?-i:[A-Z]\d[A-Z]\s?\d[A-Z]\d)|\d{2,3}[\s-]\d{2,3}|\d{4,6}(?:-\d{4})?(?:\s?(?-i:[A-Z]{2}))?)\b"
)
# A town and its postcode in running text: "in Schweinfurt 97419", "in LAHOLM 312 18",
# "in Asaa 9340", "in Szczecin 70-762" (not "in London 2012": a year is no postcode).
_TOWN_CODE = re.compile(
    r"\b(?:in|at|from|to|near)\s+(?P<place>(?:(?-i:[A-ZÀ-ÞΑ-ΩА-Я])[\w'’.-]+\s+){1,3}?)"
    r"(?P<code>\d{5}|(?!(?:1[89]|20)\d\d\b)\d{4}(?:\s?[A-Z]{2}\b)?|\d{3}\s\d{2}|\d{2}-\d{3}"
    r"|[A-Z]\d[A-Z]\s\d[A-Z]\d)\b(?![.,]\d)"
)
# Where a person lives, comes from, is or goes: "lives in HAITIGEN", "originally from
# CHISHOLM", "grew up in GUÉRET", "moved here from Celje", "I'm in Sint-Denijs", "a design
# agency based in Horjul", "arrived at Ilulissat", "a trip to Cyprus", "home city MÖLNDAL".
# Not "University of Toronto": an institution, as a copyright holder is.
_PLACE_CUE = re.compile(
    r"(?i)\b(?:(?:lives?|lived|living|resides?|resided|born|grew\s+up|originally"
    r"|moved(?:\s+here)?|returned|relocated|comes?|came|hails?|based|located|headquartered"
    r"|staying|arrived|arriving|travell?(?:ed|ing)|flew|flying|trip|i['’]m|i\s+am|we['’]re"
    r"|we\s+are)\s+(?:in|from|to|at)|home\s*(?:city|town)(?:\s+of)?)\s+"
    r"(?P<place>(?-i:[A-ZÀ-ÞΑ-ΩА-Я])[\w'’.-]*[\w'’]"
    r"(?:[ -](?-i:[A-ZÀ-ÞΑ-ΩА-Я])[\w'’.-]*[\w'’]){0,3})"
)
# "12, rue de la Paix", "60, boulevard Benabdellah Taher": French-speaking countries write a
# comma between the house number and a street-type word; together they are an address.
_NUMBER_COMMA_STREET = re.compile(
    r"(?<![\w.,:/-])(?P<addr>(?P<num>\d{1,4})(?:\s?(?:bis|ter|[a-z]))?,\s+(?i:rue|boulevard|bd"
    r"|avenue|av|chemin|allée|impasse|place|quai|cours|route|square|passage|lotissement|cité)"
    r"\.?(?:[ \t]+(?:(?:de|du|des|la|le|les|el)[ \t]+)*(?:[dl]['’])?(?-i:[A-ZÀ-Þ])[\w'’.-]*){1,4})"
)
# Colombian grid addresses: the street, "#", the crossing street and the distance from it
# ("Calle 26 # 68B-70", "Cra. 7 No. 32-16 Sur", "Tr. 4ª # 7-2 Sur" (NFKC: "4a"), "Av. calle
# 170 # 8-79", "Avenida Boyacá # 53-61 Sur"), and perhaps the six-digit postcode and the town
# after it ("... 110111 Bogotá").
_GRID_STREET = re.compile(
    r"(?<![\w.])(?P<street>(?:(?:(?i:av\.?|avenida)\s+)?(?:(?i:calle|carrera|avenida|diagonal"
    r"|transversal|circular)|Cl|Cra|Kr|Cr|Av|Dg|Tv|Tr)\.?\s+\d{1,3}[ªºao]?[A-Z]?(?:\s+Bis)?(?:\s+[A-Z])?"
    r"(?:\s+(?:Sur|Este|Norte|Oeste))?"
    r"|(?:Avenida|Av\.)\s+[A-ZÀ-Þ][\w'’-]*(?:\s+[A-ZÀ-Þ][\w'’-]*){0,2})\s*(?:#|No\.?|N[°º])"
    r"\s*\d{1,3}[A-Z]?\s?-\s?\d{1,3}(?:\s+(?:Sur|Este|Norte|Oeste))?\b)"
    r"(?:\s+(?P<code>\d{6})\s+(?P<place>[A-ZÀ-Þ][\w'’.-]*(?:\s+(?:(?:de|del|la|las|los|el)\s+)*"
    r"[A-ZÀ-Þ][\w'’.-]*){0,4}?)(?=\s*(?:[,.;\n\"]|$)))?"
)
# "the corner of Urzáiz 12 and Jónmundsson Manors", "at the corner of 5th and Main".
_CORNER = re.compile(r"(?i)\bcorner\s+of\s+(?P<addr>[^.\n;!?]{3,80}?)(?=[.;!?\n]|,\s|$)")
_NOT_STREET = re.compile(
    r"(?i)\b(?:office|fax|mobile|mob|tel|phone|cell|desk|home|work|ext|x)\b|[-+()]\d|\d[()]"
    # phone-like, but "2-A Sector 126" is a house number and "3-й" an ordinal
    r"|\d-(?![A-Za-z]\b|[а-яіїє]{1,3}\b)"
)
_UPPER = re.compile(rf"(?-i:[{_NAME_START}])")
# A street with a house range, which reads like a phone number: "Ασίνης 92-32", "Λεωφ.
# Διμηνίου 680-574". Capitalised words, then two short numbers.
_HOUSE_RANGE_LAST = re.compile(
    rf"^(?-i:[{_NAME_START}]){_WORD_REST}(?:\s+(?-i:[{_NAME_START}]){_WORD_REST}){{0,3}}"
    r"\s+(?P<range>\d{1,3}-\d{1,3})$"
)
_RESIDENCE = re.compile(
    r"(?i)\b(?:lives?|lived|living|resides?|located|moved|is)\s+(?:on|at|in|to)\s+"
    r"(?:the\s+\w+\s+side\s+of\s+)?(?P<addr>(?:\d{1,6}[ \t]+(?:\d{1,5}[ \t]+)?)?"
    rf"(?:(?-i:[A-ZÀ-Þ])[\w'’.-]*|{_LATIN_STREET_WORD})"
    r"(?:[ \t]+[\w'’.-]+){0,4}?[ \t]+\d{1,5}[a-z]?\b"
    r"(?:[ \t]+[a-z]{2,4}\b)?)"
)


# --- Layouts with street words and house numbers of their own script -----------------------
# Where names have no capitals (Japanese, Korean, Georgian, Arabic) the rules above cannot tell
# a street from prose; these layouts have a street-type word or a house-number form that prose
# does not put beside a number, and that is the cue.

_CJK = "\u3005\u3040-\u30ff\u4e00-\u9fff"
# Japanese block addresses: prefecture, city and district run together, then block (丁目), lot
# (番, 番地) and house (号), and perhaps a building and room after a space:
# "富山県東村山市轟18丁目18番15号 クレスト白金台174". A lot alone ("交響曲第5番") is no address.
_JA_BLOCK = re.compile(
    rf"[{_CJK}]{{0,20}}(?:\d{{1,4}}丁目(?:\d{{1,4}}番地?)?(?:\d{{1,4}}号)?|\d{{1,4}}番地?\d{{1,4}}号)"
    rf"(?:[ \u3000][{_CJK}]{{1,20}}\d{{1,4}}(?!\d))?"
)
# Chinese streets: a road, street or lane word (路, 街, 巷, 道), perhaps a section and alley
# ("二段", "5巷"), then the house number (号, 號) with a sub-number and floor ("之5", "4樓"), or
# the building ("F座"); a postcode may open (Taiwan, "69125 高雄市正義路53號之0") or close
# (mainland, "山东省小红市门头沟阜新路p座 562779") the line. "12号线" is a metro line.
_ZH_STREET = re.compile(
    rf"(?:(?P<before>\d{{3,6}})\s?)?(?P<addr>[{_CJK}]{{0,20}}[路街巷道](?:\d{{1,3}}段)?"
    r"(?:\d{1,4}[巷弄])?(?:\d{1,5}[号號](?![线線])(?:之\d{1,3})?(?:\d{1,3}[楼樓])?"
    r"|[A-Za-z\d]{1,3}座))(?:\s?(?P<after>\d{6})(?!\d))?"
)
# Korean road-name addresses: a province or city and a district (names ending in 도, 시, 군,
# 구), then the road (a name ending in 로, 길, 거리 or 가) and the building number:
# "충청북도 정선군 가락1거리 648-76 (정희김리)", "역삼69로 지하705" (a basement number). "으로"
# is a particle ("중심으로"), and a number with a counter after it ("5명") is a quantity.
_KO_ROAD = re.compile(
    r"(?:[가-힣]{1,10}[도시군구]\s+){1,3}[가-힣\d]{1,15}(?:(?<!으)로|길|거리|가)\s?(?:지하\s?)?\d{1,5}"
    r"(?:-\d{1,5})?(?![\d가-힣])(?:\s\([가-힣\d]{1,15}\))?"
)
# Georgian streets: the name, a street-type word (ქ. street, გამზ. avenue, ჩიხი dead end,
# შესახვევი lane, მოედანი square) and the house number: "ტატიშვილის ქ. 33".
_KA_STREET = re.compile(
    r"(?<![\u10d0-\u10ff\d])(?:\d{1,3}\s+)?(?:[\u10d0-\u10ff]+\s+){1,3}"
    r"(?:ქ(?:უჩა)?|გამზ(?:ირი)?|ჩიხი|შესახვევი|მოედანი|ხეივანი|გზატკეცილი)\.?\s*\d{1,4}(?!\d)"
)
# Thai: the house number, perhaps the village number (หมู่ 5), then the road or lane word
# (ถนน, ถ., ซอย, ซ.) and its name, or the subdistrict (ต., ตำบล, แขวง) when there is no road:
# "56 หมู่ 2 ถนนฉิมพาลี", "27 หมู่ 05 ถ.พีระเพ็ญกุล", "931/4 ต.หนองช้างแล่นใต้". Subdistrict,
# district (อ., อำเภอ, เขต), province (จ., จังหวัด) and the five-digit postcode may follow,
# up to four Thai words before the code: "… อ.วังยาง พัทลุง 17950".
_TH_WORD = r"[\u0e00-\u0e7f]+"
_TH_STREET = re.compile(
    r"(?<![\w/.-])\d{1,5}(?:/\d{1,4})?\s+(?:หมู่(?:ที่)?\s*\d{1,3}\s+)?"
    rf"(?:ถนน|ถ\.|ซอย|ซ\.|ต\.|ตำบล|แขวง)\s?{_TH_WORD}"
    rf"(?:(?:\s+(?:(?:[ตอจ]\.|ตำบล|อำเภอ|จังหวัด|แขวง|เขต)\s?)?{_TH_WORD}){{0,4}}\s+\d{{5}}(?!\d))?"
)
# Arabic streets as the Maghreb writes them: the house number, a street-type word (شارع
# street, نهج and زنقة and درب lane, طريق road, حي quarter, دوار village, ساحة square, بلدية
# commune) and up to four words of the name: "950 شارع بن سعيد".
_AR_LETTERS = "\u0621-\u065f\u0670-\u06d3"
_AR_STREET = re.compile(
    r"(?<![\w.,/-])\d{1,5}\s+(?:شارع|نهج|زنقة|درب|طريق|حي|دوار|ساحة|بلدية|جادة)"
    rf"(?:\s+[{_AR_LETTERS}]+){{1,4}}"
)
# Vietnamese: the house number ("Số 71", "3/94", "36/865"), the lane and street words ("Hẻm
# 63 đường Nguyễn Văn Cừ", "Phố số 1", "Lê Lai"), then a ward, commune, district, province or
# city word ("phường", "xã", "TP."): "Số 3/94 phố số 27 Xã Dương Minh Châu tỉnh An Giang".
_VI_ADMIN = r"(?:[Pp]hường|[Xx]ã|[Qq]uận|[Hh]uyện|[Tt]hị\s+trấn|[Tt]ỉnh|TP\.|[Tt]hành\s+phố)"
_VI_STREET = re.compile(
    r"(?<![\w/.,-])(?:Số\s+)?(?P<num>\d{1,4})(?:/\d{1,4}){0,3}(?P<words>(?:\s+\w+){1,7}?)"
    rf"(?=,?\s+{_VI_ADMIN}\s)"
)
# Lane and street words, lower case in Vietnamese addresses.
_VI_STREET_WORDS = frozenset({"số", "đường", "phố", "hẻm", "ngõ", "ngách", "kiệt", "khóm", "khu"})
# A province or city and its postcode: "tỉnh Điện Biên 84015", "TP. Huế 57210".
_VI_POSTCODE = re.compile(
    rf"(?<!\w){_VI_ADMIN}(?P<words>(?:\s+\w+){{1,6}}?)\s+(?P<code>\d{{5,6}})(?![\d\w])"
)
_VI_ADMIN_WORDS = frozenset(
    {"phường", "xã", "quận", "huyện", "thị", "trấn", "tỉnh", "thành", "phố"}
)
# Azerbaijani streets: the name, then küçəsi (street), prospekti (avenue), döngəsi (lane),
# dalanı (dead end), şossesi (road) or meydanı (square), and perhaps building and flat:
# "ARİF HEYDƏROV prospekti, b. 2, m. 35", "T.ƏLİYEV küç.". "pr." is short enough to end
# other words, so it counts only with building and flat after it ("TƏBRİZ pr., b. 7, m. 5").
_AZ_CAP = rf"(?:\d{{1,3}}\s+)?{_AZ_NAME}(?:\s+{_AZ_NAME}){{0,3}}"
_AZ_STREET = re.compile(
    rf"(?<![\w.])(?:{_AZ_CAP}\s+(?:küçəsi|küç\.|prospekti|döngəsi|dalanı|şossesi|meydanı)"
    r"(?:,\s*b\.\s*\d{1,4}(?:,\s*m\.\s*\d{1,4})?)?"
    rf"|{_AZ_CAP}\s+pr\.,\s*b\.\s*\d{{1,4}},\s*m\.\s*\d{{1,4}})"
)
# Argentine lines: a street-type word, the name, "N°" and the house number, then the postcode
# (eight digits, the CPA "C1425ABC" or its older "C1425") and the town:
# "Calle Formosa N° 151 57000646 San Juan", "Av. Corrientes N° 1234 C1043AAZ Buenos Aires".
_NUMERO_LINE = re.compile(
    rf"(?<![\w.])(?P<street>{_STREET_WORD_RE.pattern}\.?(?:\s+(?:{_CAPWORD}|\d{{1,3}})){{1,5}}?"
    r"\s+N(?:[°º]|o\.?)\s?\d{1,5}[A-Za-z]?)"
    rf"\s+(?P<code>\d{{8}}|{_CPA}|[A-HJ-NP-Z]\d{{4}})"
    rf"\s+(?P<place>(?-i:[{_UPPER_CLASS}]){_WORD_REST}(?:\s+{_CAPWORD}){{0,5}}?)(?=\s*(?:[,\n\"]|$))"
)


# A Chilean route and its kilometre: "Ruta 5 Norte, km 1020", "Ruta U-570, km 12".
_RUTA = re.compile(
    r"(?<![\w.])Ruta\s+(?:[A-Z]-?)?\d{1,4}(?:\s+(?:Norte|Sur|Este|Oeste))?(?=,?\s+[Kk]m\b)"
)
# Irish Eircodes ("D02 X285", "H925A5V"): a routing key and four characters of the letters An
# Post uses. Ten characters of letters and digits are common in other codes, so an Eircode
# counts after an English street-type word ("42 Main Street D02 X285 Dublin"), after a county
# ("Co. Galway, H91 E2K3") or before "Ireland"; an old Dublin district ("Dublin 4", "Dublin 6W")
# as a line of its own.
_EIR_CHARS = "AC-FHKNPRTV-Y"
_EIRCODE = rf"[{_EIR_CHARS}]\d[\dW]\s?[{_EIR_CHARS}\d]{{4}}"
_IE_POSTCODE = re.compile(
    r"(?:\b(?:Street|St|Road|Rd|Avenue|Ave|Lane|Drive|Park|Close|Court|Crescent|Place|Square"
    r"|Terrace|Way|Grove|View|Green|Row|Hill|Quay|Walk|Gardens|Heights|Lawn|Mews|Rise|Manor"
    rf"|Estate|Vale)\.?|\bCo\.?\s+[A-Z][a-z]+)[ \t]*,?[ \t]+(?P<code>{_EIRCODE})(?![\w-])"
    rf"|(?<![\w-])(?P<code2>{_EIRCODE}),?[ \t]+(?:Ireland|Éire)\b"
    r"|(?:^|(?<=[,\n\"]))[ \t]*(?P<district>Dublin[ \t](?:[12]?\d|6W))(?=[ \t]*(?:[,\n\"]|$))",
    re.MULTILINE,
)
_IE_CUE = re.compile(rf"Dublin|{_EIRCODE}")
# Malaysian streets: the house, lot or unit number, a comma, then Jalan, Lorong or Persiaran and
# the name: "9, Lorong 1E", "No. D-94-40, Jalan 8/5", "Lot 6f-34, Lorong 1a".
_MY_STREET_WORD = r"(?:Jalan|Jln\.?|Lorong|Lrg\.?|Persiaran|Lebuhraya|Lebuh|Lingkaran)"
_MY_STREET = re.compile(
    r"(?:^|(?<=[,\n\"(:]))[ \t]*(?P<addr>(?P<prefix>(?:No\.|Lot)[ \t]?)?"
    r"(?P<num>[A-Z]?-?\d{1,4}[A-Za-z]?(?:-\d{1,4}[A-Za-z]?){0,2}),[ \t]+"
    rf"{_MY_STREET_WORD}[ \t]+[\w/.'’-]+(?:[ \t]+[\w/.'’-]+){{0,4}}?)(?=[ \t]*(?:[,\n\"]|$))",
    re.MULTILINE,
)
_MY_CUE = re.compile(rf"\b{_MY_STREET_WORD}\s")
# Persian addresses. A street-type word after the name (خیابان street, کوچه lane, بلوار
# boulevard, میدان square, بزرگراه/آزادراه motorway, جاده road, بن بست dead end, چهارراه
# crossroads) with the house number first, or a street word and name before پلاک (house
# number): "1133 محمدحسين جاده", "خیابان آزادی، کوچه لاله، پلاک ۱۲". And the block of Iranian
# layouts: a line opened by the house number, the district, then the province and its
# postcode ("249 عزیزی کوه, شمال کوثر, سیستان و بلوچستان 8614732820"), when the code has the
# ten digits of Iranian postcodes or the street line a street or unit word. A Persian year (13xx,
# 14xx) or a recent Gregorian one opens no street.
_FA_WORD = rf"[{_AR_LETTERS}\u06a9\u06af\u06cc\u200c]+"
_FA_STREET_WORD = (
    r"(?:خیابان|کوچه|بلوار|میدان|بزرگ\s?راه|آزاد\s?راه|جاده|بن[\s\u200c]?بست|چهار\s?راه"
    r"|کوی)"
)
_FA_UNIT = r"(?:\s+(?:واحد|سوئیت|طبقه)\s+\d{1,4})"
_FA_CUE_WORD = re.compile(rf"{_FA_STREET_WORD}|{_FA_UNIT}")
_FA_STREET = re.compile(
    rf"(?<![\w.,/-])(?!(?:1[349]\d|20[0-3])\d(?!\d))\d{{1,5}}(?:\s+{_FA_WORD}){{1,3}}\s+"
    rf"{_FA_STREET_WORD}(?![{_AR_LETTERS}]){_FA_UNIT}?(?=\s*(?:[,،\n\"]|$))"
    rf"|(?<![{_AR_LETTERS}]){_FA_STREET_WORD}(?:\s+{_FA_WORD}){{1,4}}(?:\s*[,،]\s*{_FA_STREET_WORD}"
    rf"(?:\s+(?:{_FA_WORD}|\d{{1,4}})){{1,4}}){{0,3}}\s*[,،]\s*پلاک\s*\d{{1,5}}(?!\d)"
)
_FA_BLOCK = re.compile(
    rf"(?<![\w.,/-])(?P<street>(?!(?:1[349]\d|20[0-3])\d(?!\d))\d{{1,5}}"
    rf"(?:\s+{_FA_WORD}){{1,5}}{_FA_UNIT}?)[ \t]*[,،\n][ \t]*"
    rf"(?:{_FA_WORD}(?:[ \t]+{_FA_WORD}){{0,3}}[ \t]*[,،\n][ \t]*){{1,2}}"
    rf"(?P<province>{_FA_WORD}(?:[ \t]+{_FA_WORD}){{0,3}})[ \t]+"
    r"(?P<code>\d{3,10}|\d{5}-\d{5})(?![\w-])"
)
_FA_CUE = re.compile("[\u067e\u0686\u0698\u06a9\u06af\u06cc]")  # پ چ ژ ک گ ی
# Hebrew addresses: a street-type word (רחוב street, שדרות avenue, סמטת alley, כיכר square,
# דרך road), the name and the house number closing a line or field ("רחוב הרצל 12,"); and the
# Israeli layout of street and number, town, then the seven-digit postcode ("הגפן 86, מגאר,
# 7559602"). Brackets may stand mirrored, as text stored in visual order has them.
_HE_WORD = "[()]?[\u05d0-\u05ea][\u05d0-\u05ea'\"׳״()-]*"
_HE_STREET = re.compile(
    rf"(?<![\u05d0-\u05ea])(?:רחוב|רח'|שדרות|שד'|סמטת|כיכר|דרך)\s+{_HE_WORD}(?:\s+{_HE_WORD}){{0,3}}"
    r"\s+\d{1,4}[\u05d0-\u05ea]?(?![\d\w])(?=\s*(?:[,\n]|$))"
)
_HE_BLOCK = re.compile(
    rf"(?<![\w\u05d0-\u05ea'])(?<![\u05d0-\u05ea]\")"
    rf"(?P<street>{_HE_WORD}(?:[ \t]+{_HE_WORD}){{0,4}}[ \t]+\d{{1,4}}[\u05d0-\u05ea]?)"
    rf"[ \t]*,[ \t]*(?P<town>{_HE_WORD}(?:[ \t]+{_HE_WORD}){{0,4}})"
    r"[ \t]*,[ \t]*(?P<code>\d{7})(?!\d)"
)
_HEBREW = re.compile("[\u05d0-\u05ea]")


@dataclass
class _Segment:
    start: int
    end: int
    kind: str  # street, unit, military, postal, country, settlement, town, filler, other
    code: tuple[int, int] | None = None
    place: tuple[int, int] | None = None
    strong: bool = False  # postal with a country or US state
    labelled: bool = False  # the segment opens an address field ("Address: 364024, ...")


def _named_after(m: re.Match[str]) -> bool:
    """Whether a house number's street is a name: its first word, or one after it, capitalised.

    A lower-case street-type word alone is prose: "3 route options and 12 place settings".
    """
    return _capitalised(m.group("lead")) or any(_capitalised(w) for w in m.group("name").split())


def _segments(text: str) -> Iterator[tuple[int, int, bool]]:
    """Line and comma segments of ``text`` as (start, end, opens an address field)."""
    for m in re.finditer(r"[^\n,|;]+", text):
        s, e = m.start(), m.end()
        prefix = _PREFIX.match(text, s, e)
        labelled = prefix is not None and prefix.group("label") is not None
        if prefix is not None:
            s = prefix.end()
        while e > s and (text[e - 1].isspace() or text[e - 1] in "\"'"):
            e -= 1
        if e > s:
            yield s, e, labelled


def _classify(text: str, s: int, e: int) -> _Segment:  # noqa: PLR0911 - one return per kind
    seg = text[s:e]
    folded = seg.casefold().strip(". ")
    # "S/N" (sin número, sem número): a street without a house number, as a field of its own.
    if folded in ("nan", "", "s/n", "s/nº", "s/nro") or (
        _HOUSE_NUMBER.fullmatch(seg) and (len(seg) <= 3 or "/" in seg)
    ):
        return _Segment(s, e, "filler")
    if _UNIT.match(seg):
        return _Segment(s, e, "unit")
    tail = _UNIT_TAIL.search(seg)
    if tail is not None:
        return _Segment(s + tail.start(), e, "unit")
    if _MILITARY.match(seg):
        return _Segment(s, e, "military")
    head = _MILITARY_HEAD.match(seg)
    if head is not None:
        return _Segment(s, s + head.end(), "military")
    if folded in countries():
        return _Segment(s, e, "country", place=(s, e))
    settlement = _SETTLEMENT.match(seg)
    if settlement is not None:
        name = next(g for g in ("after", "before", "az", "region") if settlement.group(g))
        named = (s + settlement.start(name), s + settlement.end(name))
        return _Segment(s, e, "settlement", place=named)
    lead = _CEPT_PREFIX.match(seg)
    if lead is not None and (lead.end() == len(seg) or seg[lead.end()].isspace()):
        # "DK-1615 Ko/benhavn V": the country's letters make the code; the town may be
        # written in any transliteration.
        rest = seg[lead.end() :].lstrip()  # the segment ends at e, trailing space trimmed
        town = (e - len(rest), e) if rest and _TOWN.match(rest) else None
        return _Segment(s, e, "postal", (s, s + lead.end()), town, True)
    for pattern in (_POSTAL_DASH, _POSTAL_AFTER, _POSTAL_BEFORE):
        m = pattern.match(seg)
        if m is None:
            continue
        code = m.group("code")
        place = m.group("place")
        if _YEAR.fullmatch(code) and not place:
            break
        if place is None and not code[0].isdigit() and not _ALNUM_CODE.fullmatch(code):
            break
        strong = bool(_CEPT_PREFIX.fullmatch(code)) or bool(
            place
            and (
                place.casefold() in countries()
                or place.split()[-1] in _US_STATE_CODES
                # "South April, NT B2V 1J2": a Canadian province and a Canadian code.
                or (place.split()[-1] in _CA_PROVINCE_CODES and _CA_CODE.fullmatch(code))
                or place.split()[-1].casefold() == "nan"
                # "Bicske FE 2063", "LILLE NP 59000": a town, a region code, a postcode.
                or (len(place.split()) > 1 and _REGION_CODE.fullmatch(place.split()[-1]))
            )
        )
        if place is None and len(code) < 4:
            break
        if (
            place
            and not strong
            and code.isdigit()
            and len(code) <= 5
            and " " in place
            and _STREET_WORD_RE.fullmatch(place.split()[0])
        ):
            # "Calle Las Rosas 8283": a street-type word, a name and the house number.
            return _Segment(s, e, "street_weak")
        pl = (s + m.start("place"), s + m.end("place")) if place else None
        return _Segment(s, e, "postal", (s + m.start("code"), s + m.end("code")), pl, strong)
    house_range = _HOUSE_RANGE_LAST.match(seg)
    if house_range and not _NOT_STREET.search(seg, 0, house_range.start("range")):
        return _Segment(s, e, "street_weak")  # "Ασίνης 92-32", not "Tel 555-123"
    if _NOT_STREET.search(seg) or not _UPPER.search(seg):
        return _Segment(s, e, "other")
    m = _STREET_NUMBER_FIRST.match(seg)
    if m and not _YEAR.fullmatch(m.group(1)):
        return _Segment(s, e, "street")
    words = seg.split()
    street_word = _STREET_WORD_RE.fullmatch(words[0]) is not None
    if (
        _STREET_NUMBER_LAST.match(seg)
        and not _YEAR.fullmatch(words[-1].rstrip("."))
        and (_capitalised(words[0]) or street_word)  # "rue Uldry 17", "ul. Rubinowa 79/13"
        # "Bécsi utca 35.", "avenue de Chevalley 59", not prose
        and sum(
            not _capitalised(w) and w not in _PARTICLES and not _STREET_WORD_RE.fullmatch(w)
            for w in words[street_word:-1]
            if not w[:1].isdigit()  # "Strada Ababei Nr. 709 Bl. 29 Sc. 47 Ap. 512"
        )
        <= 1
    ):
        return _Segment(s, e, "street_weak")
    if street_word and _NAMED_STREET.fullmatch(seg) and not not_personal(seg):
        # "Strada Manole", "boulevard Céline Piccand": a street-type word and a name, the
        # house number elsewhere or none; an address line only beside a postal line.
        return _Segment(s, e, "street_named")
    if _TOWN.match(seg) and len(seg) <= 40:
        return _Segment(s, e, "town", place=(s, e))
    tail = _STREET_TAIL.search(seg)
    if (
        tail is not None
        and not _MONTH_WORD.search(tail.group(0))
        and (tail.group("unit") or not _YEAR.fullmatch(tail.group("num")))
        and _named_after(tail)
    ):
        return _Segment(s + tail.start(), e, "street_tail")
    lead = _POSTAL_LEAD.match(seg)
    if lead is not None and lead.group("place").casefold() in countries():
        # "Cyprus 27042. Please call me when you're here.": a country's postcode, then prose.
        code = (s + lead.start("code"), s + lead.end("code"))
        return _Segment(s, s + lead.end(), "postal", code, (s, s + lead.end("place")), True)
    return _Segment(s, e, "other")


def _script_layouts(text: str) -> Iterator[tuple[str, int, int]]:
    """Streets, postcodes and towns by the layouts of their own script, as (entity, start, end).

    Japanese blocks, Chinese, Korean, Georgian, Thai, Arabic and Azerbaijani streets,
    Vietnamese streets and postcodes, Argentine "N°" lines (see the patterns). Each pattern
    runs only when its script or cue is in the text, which keeps the rest of the text fast.
    """
    if _ZH_CUE.search(text):
        for m in _ZH_STREET.finditer(text):
            yield "STREET_ADDRESS", m.start("addr"), m.end("addr")
            for code in ("before", "after"):
                if m.group(code):
                    yield "POSTCODE", m.start(code), m.end(code)
    for cue, pattern in _SCRIPT_STREETS:
        if cue.search(text):
            yield from (("STREET_ADDRESS", m.start(), m.end()) for m in pattern.finditer(text))
    if _VI_CUE.search(text):
        for m in _VI_STREET.finditer(text):
            if _vi_street(m):
                yield "STREET_ADDRESS", m.start(), m.end()
        for m in _VI_POSTCODE.finditer(text):
            if all(_capitalised(w) or w in _VI_ADMIN_WORDS for w in m.group("words").split()):
                yield "POSTCODE", m.start("code"), m.end("code")
    yield from _cue_layouts(text)
    if _NUMERO_CUE.search(text):
        for m in _NUMERO_LINE.finditer(text):
            yield "STREET_ADDRESS", m.start("street"), m.end("street")
            yield "POSTCODE", m.start("code"), m.end("code")
            yield "LOCATION", m.start("place"), m.end("place")


def _cue_layouts(text: str) -> Iterator[tuple[str, int, int]]:
    """Chilean routes, Irish postcodes, Malaysian, Persian and Hebrew streets, each by its cue."""
    if "Ruta" in text:
        yield from (("STREET_ADDRESS", m.start(), m.end()) for m in _RUTA.finditer(text))
    if _IE_CUE.search(text):
        for m in _IE_POSTCODE.finditer(text):
            group = next(g for g in ("code", "code2", "district") if m.group(g))
            yield "POSTCODE", m.start(group), m.end(group)
    if _MY_CUE.search(text):
        for m in _MY_STREET.finditer(text):
            if m.group("prefix") or not _YEAR.fullmatch(m.group("num")):
                yield "STREET_ADDRESS", m.start("addr"), m.end("addr")
    if _FA_CUE.search(text):
        yield from (("STREET_ADDRESS", m.start(), m.end()) for m in _FA_STREET.finditer(text))
        for m in _FA_BLOCK.finditer(text):
            if len(m.group("code")) < 10 and not _FA_CUE_WORD.search(m.group("street")):
                continue  # "من 300 تومان دادم، خیلی گران بود، قیمت 500" is prose
            yield "STREET_ADDRESS", m.start("street"), m.end("street")
            yield "LOCATION", m.start("province"), m.end("province")
            yield "POSTCODE", m.start("code"), m.end("code")
    if _HEBREW.search(text):
        yield from (("STREET_ADDRESS", m.start(), m.end()) for m in _HE_STREET.finditer(text))
        for m in _HE_BLOCK.finditer(text):
            yield "STREET_ADDRESS", m.start("street"), m.end("street")
            yield "LOCATION", m.start("town"), m.end("town")
            yield "POSTCODE", m.start("code"), m.end("code")


_ZH_CUE = re.compile("[号號座]")
# Letters of the Vietnamese ward, commune, district and province words: text without any
# of them holds no Vietnamese address.
_VI_CUE = re.compile("[ườãậệỉốị]")
_NUMERO_CUE = re.compile(r"N(?:[°º]|o\.?)\s?\d")
_HANGUL = re.compile("[가-힣]")
_GEORGIAN = re.compile("[\u10d0-\u10ff]")
_ARABIC = re.compile(f"[{_AR_LETTERS}]")
#: Street patterns and the cue that must be in a text for each to run.
_SCRIPT_STREETS = (
    (re.compile("丁目|号"), _JA_BLOCK),
    (_HANGUL, _KO_ROAD),
    (_GEORGIAN, _KA_STREET),
    (_ARABIC, _AR_STREET),
    (re.compile("[ถซตแ]"), _TH_STREET),
    (re.compile(r"küç|prospekti|döngəsi|dalanı|şossesi|meydanı|pr\.,"), _AZ_STREET),
)


def _vi_street(m: re.Match[str]) -> bool:
    """Whether a ``_VI_STREET`` match is a street: its words are names, numbers or street words.

    "Số 4 phố Quang Trung", "63/158 Lê Lai"; not "3 con mèo ở" (prose before "phường"), nor a
    year without "Số".
    """
    if _YEAR.fullmatch(m.group("num")) and not m.group(0).startswith("Số"):
        return False
    return all(
        _capitalised(w) or w.isdigit() or w.casefold() in _VI_STREET_WORDS
        for w in m.group("words").split()
    )


_HOUSE_NAME = re.compile(rf"{_CAPWORD}(?:[\s-]+{_CAPWORD}){{0,3}}")
_DESIGNATOR = re.compile(rf"\b{ORGANISATION_WORD}(?!\w)")


def _house_name(text: str, line: _Segment, postal: _Segment) -> bool:
    """Whether ``line`` is a house name before ``postal`` (``AddressBlockRecognizer.analyze``).

    The postal line must hold a town and a code that is no year; the name is one to four
    words without digits, capitalised but for short particles ("Mas de la Font"), no
    organisation ("Acme GmbH, D-10115 Berlin"), no country, and nothing the over-scrubbing
    policy exempts.
    """
    if postal.kind != "postal" or postal.place is None or postal.code is None:
        return False
    if _YEAR.fullmatch(text[postal.code[0] : postal.code[1]]):
        return False
    name = text[line.start : line.end]
    return (
        line.kind in ("town", "other")
        and len(name) <= 40
        and _HOUSE_NAME.fullmatch(name) is not None
        and all(w[0].isupper() for w in name.split() if len(w) > 3)  # "Mas de la Font"
        and _DESIGNATOR.search(name) is None
        and name.casefold() not in countries()
        and not not_personal(name)
    )


def _reread(text: str, segs: list[_Segment]) -> None:
    """Reclassify segments that their neighbours show to be street lines (in place).

    A segment alone can be read two ways: "1356 Jabavu Street" as a postcode and town, "Favela
    Câmara" or "Shahid Ghasemi Habibollah" as a town. The next or previous segment decides: a
    postcode of its own after it, or a bare house number beside it on the same line.
    """
    _mark_chain_end_codes(text, segs)
    for i, seg in enumerate(segs):
        if _settlement_code(text, segs, i):
            segs[i] = _Segment(seg.start, seg.end, "postal", (seg.start, seg.end))
            continue
        # A number and words read as a postcode and town, but a postcode of its own follows
        # ("1356 Jabavu Street, Pretoria, 0002"), or the next segment is a town and its
        # postcode ("4148 सुमन्त्र मल्होत्रा, मुंबई 291087", "9125 सक्सेना, अमरावती-964449"):
        # it is the house number and street.
        if seg.kind == "postal" and not seg.strong and seg.code and seg.code[0] == seg.start:
            later = itertools.takewhile(
                lambda g: g.kind in ("town", "filler", "postal"), segs[i + 1 : i + 4]
            )
            own_code = any(g.kind == "postal" and (g.place is None or g.strong) for g in later)
            if (
                own_code or (seg.place is not None and _town_code_next(text, seg, segs, i))
            ) and _STREET_NUMBER_FIRST.match(text[seg.start : seg.end]):
                segs[i] = _Segment(seg.start, seg.end, "street")
        # "Los Carrera 4183 / Vilcún, Región de La Araucanía, 5662040": words and a number
        # read as a town and postcode, but a region line and a postcode of its own follow.
        if seg.kind == "postal" and not seg.strong and seg.code and seg.code[1] == seg.end:
            following = list(
                itertools.takewhile(
                    lambda g: g.kind in ("town", "filler", "postal", "settlement"),
                    segs[i + 1 : i + 4],
                )
            )
            if (
                any(g.kind == "settlement" for g in following)
                and any(g.kind == "postal" and g.place is None for g in following)
                and seg.code[1] - seg.code[0] <= 5
                and not _YEAR.fullmatch(text[seg.code[0] : seg.code[1]])
                and _STREET_NUMBER_LAST.match(text[seg.start : seg.end])
            ):
                segs[i] = _Segment(seg.start, seg.end, "street_weak")
        if i + 1 < len(segs) and _beside_number(text, seg, segs[i + 1]):
            # "Favela Câmara, 324, Grajaú, 69242-562": words, then the house number.
            segs[i] = _Segment(seg.start, seg.end, "street_named")
        if i > 0 and _beside_number(text, seg, segs[i - 1]):
            # "5, Shahid Ghasemi Habibollah, Azadi Ave, Tehran": the number, then the street.
            segs[i - 1] = _Segment(segs[i - 1].start, seg.end, "street_named")
            segs[i] = _Segment(seg.end, seg.end, "filler")
    # Again, now that the streets joined above stand: "Holding No. 8, HakimAvenue, …, 1966".
    _mark_chain_end_codes(text, segs)


def _town_code_next(text: str, seg: _Segment, segs: list[_Segment], i: int) -> bool:
    """Whether the segment after ``segs[i]`` is a town and its postcode, no year, near it."""
    if i + 1 >= len(segs):
        return False
    nxt = segs[i + 1]
    return (
        nxt.kind == "postal"
        and nxt.place is not None
        and nxt.code is not None
        and nxt.code[1] == nxt.end
        and text.count("\n", seg.end, nxt.start) <= 1
        and not _YEAR.fullmatch(text[nxt.code[0] : nxt.code[1]])
    )


def _mark_chain_end_codes(text: str, segs: list[_Segment]) -> None:
    """Reread as postcodes the year-shaped segments that end a street's chain (in place)."""
    for i, seg in enumerate(segs):
        if _chain_end_code(text, segs, i):
            segs[i] = _Segment(seg.start, seg.end, "postal", (seg.start, seg.end))


def _chain_end_code(text: str, segs: list[_Segment], i: int) -> bool:
    """Whether ``segs[i]``, four digits read as a year, is the postcode of the street before it.

    "House No. 913, Middle BaliaDanga Lane, ShyamDiya, Bhola, 1803", "Nicolelaan 3, 1975,
    Baelen", "939 Sara Court / Ashleymouth, ACT, 1897": Bangladeshi, Belgian, Australian and
    South African postcodes are four digits, many of them year-shaped. A bare four-digit
    segment is the code when a street (or a number and words, "7393 Church Indawo") stands
    at most three town segments before it, no more than one line break away, and the chain
    ends with it or goes on with a town or country. "Oak Street, Leeds, 2004 was great"
    stays a year: that segment holds more than the number.
    """
    seg = segs[i]
    code = text[seg.start : seg.end]
    if not (seg.kind == "other" and len(code) == 4 and code.isascii() and code.isdigit()):
        return False
    after = segs[i + 1] if i + 1 < len(segs) else None
    same_line = after is not None and "\n" not in text[seg.end : after.start]
    if same_line and after is not None and after.kind not in ("town", "country"):
        return False
    town_after = same_line and after is not None and after.kind == "town"
    chain = itertools.takewhile(
        lambda k: text.count("\n", segs[k].end, seg.start) <= 1, range(i - 1, max(i - 5, -1), -1)
    )
    k = next((k for k in chain if segs[k].kind not in ("town", "filler")), None)
    if k is None:
        return False
    before = segs[k]
    if before.kind == "street_weak":
        # Words and a number are a street only in the Belgian layout, right before the code
        # with the town after it ("Nicolelaan 3, 1975, Baelen"), not "See pages 12/14,
        # London, 2019".
        return k == i - 1 and town_after
    return (
        before.kind in _STREETISH
        or (before.kind == "postal" and before.code is not None and before.code[0] == before.start)
    ) and _MONTH_WORD.search(text, before.start, before.end) is None  # "April 10, 1992"


def _settlement_code(text: str, segs: list[_Segment], i: int) -> bool:
    """Whether ``segs[i]``, four digits read as a year, is a postcode after a settlement line.

    "գ. Արծվաբերդ, Տավուշի մարզ, 2126, Բրյուսովի 66": Armenian postcodes run 0001 to 4999, so
    some read as years; after a town or province marked as one, and before more address, the
    number is the postcode.
    """
    seg = segs[i]
    return (
        seg.kind == "other"
        and 0 < i < len(segs) - 1
        and segs[i - 1].kind == "settlement"
        and segs[i + 1].kind in _STREETISH
        and len(code := text[seg.start : seg.end]) == 4
        and code.isascii()
        and code.isdigit()
    )


# A house number alone ("77", "57/138"), and a unit that is one ("H.No. 739", "Building No. 4").
_HOUSE_NUMBER = re.compile(r"\d{1,4}(?:/\d{1,4})?")
_HOUSE_UNIT = re.compile(r"(?i)(?:h\.?\s?no|(?:house|door|building|holding|plot)\s+no)\.?\s*\d")


def _beside_number(text: str, words: _Segment, number: _Segment) -> bool:
    """Whether ``words`` (read as a town) and a bare house number make a street.

    They share a line ("Favela Câmara, 324", "57/138, Balay Circle", "H.No. 739, Kaul"), or
    the number stands alone on the line before ("39" then "Muni, Meerut 464033").
    """
    first, second = sorted((words, number), key=lambda g: g.start)
    value = text[number.start : number.end]
    gap = text[first.end : second.start]
    return (
        words.kind == "town"
        and (
            (number.kind == "filler" and _HOUSE_NUMBER.fullmatch(value) is not None)
            or (
                number.kind in ("unit", "street_weak")  # "Building No. 4" reads as a street
                and first is number
                and _HOUSE_UNIT.match(value) is not None
            )
        )
        and gap.count("\n") <= (first is number and number.kind == "filler")
        and _DESIGNATOR.search(text, words.start, words.end) is None
        and not not_personal(text[words.start : words.end])
    )


def _code_before_country(text: str, postal: _Segment, country: _Segment) -> bool:
    """Whether ``postal`` is a postcode and town line just before a country line.

    "%   3000 Kaunas, Lithuania" in an address block: the code opens its line (after quote
    marks, bullets or a label), the town follows it, the country ends the line. Not a year
    ("Windows 2000, USA"), nor a number in a sentence ("Thanks, 1000 Songs, Germany").
    """
    if postal.kind != "postal" or postal.code is None or country.kind != "country":
        return False
    code = text[postal.code[0] : postal.code[1]]
    line_start = text.rfind("\n", 0, postal.start) + 1
    return (
        postal.place is not None
        and postal.code[0] == postal.start
        and not _YEAR.fullmatch(code)
        and not any(c.isalnum() for c in text[line_start : postal.start])
        and "\n" not in text[postal.end : country.start]
    )


def _leads_a_street(seg: _Segment) -> bool:
    """Whether a postal line before a street makes an address with it.

    A code alone or before its town ("125009", "75011 Paris"), or one with a country; not a
    number after words ("ticket 4521").
    """
    if seg.kind == "settlement":
        return True
    if seg.kind != "postal" or seg.code is None:
        return False
    return seg.place is None or seg.strong or seg.code[0] == seg.start


_STREETISH = frozenset({"street", "street_weak", "street_tail", "street_named", "unit", "military"})
#: What may stand before a street in a block (postcode and town first), and what makes a block
#: an address beside a street line.
_LEADING = frozenset({"town", "filler", "postal", "settlement"})
_STRONG = frozenset({"unit", "military", "postal", "country", "settlement"})
_TAILISH = frozenset({"unit", "military", "postal", "country", "town", "filler", "settlement"})


class AddressBlockRecognizer(LocalRecognizer):
    """Addresses by layout (see the module docstring): STREET_ADDRESS, LOCATION, POSTCODE."""

    SCORE = 0.55
    NAME = "AddressBlockRecognizer"

    def __init__(self) -> None:
        super().__init__(
            supported_entities=["STREET_ADDRESS", "LOCATION", "POSTCODE"],
            supported_language="en",
            name=self.NAME,
        )

    def load(self) -> None:
        """Nothing to load: compiled patterns and Faker's country list (read lazily)."""

    def _result(self, entity: str, start: int, end: int) -> Any:
        return make_result(self.NAME, self.id, entity, start, end, score=self.SCORE)

    def analyze(self, text: str, entities: Sequence[str], nlp_artifacts: Any = None) -> list[Any]:
        """Address blocks, stand-alone postal lines, and inline addresses."""
        out: list[Any] = []
        for m in _PLACE_CUE.finditer(text):
            if not not_personal(m.group("place")):
                out.append([self._result("LOCATION", m.start("place"), m.end("place"))])
        segs = [
            dataclasses.replace(_classify(text, s, e), labelled=labelled)
            for s, e, labelled in _segments(text)
        ]
        _reread(text, segs)
        for i in range(len(segs) - 1):
            # A town line followed by a country line: an address without a street.
            if segs[i].kind == "town" and segs[i + 1].kind == "country":
                out.append([self._emit(segs[i])[0], self._emit(segs[i + 1])[0]])
            # A postcode and town, then the country ("3000 Kaunas, Lithuania"): likewise.
            if _code_before_country(text, segs[i], segs[i + 1]):
                out.append([*self._emit(segs[i]), *self._emit(segs[i + 1])])
        layout_codes = set()
        for entity, start, end in _script_layouts(text):  # some need no digit ("küçəsi")
            out.append([self._result(entity, start, end)])
            if entity == "POSTCODE":
                layout_codes.add((start, end))
        if not any(c.isdigit() for c in text):
            return [r for group in out for r in group]
        used: set[int] = set()
        for i, seg in enumerate(segs):
            if i in used or seg.kind not in _STREETISH:
                continue
            block = [i]
            j = i + 1
            while j < len(segs) and len(block) < 7:
                if segs[j].kind in _TAILISH or segs[j].kind in _STREETISH:
                    block.append(j)
                    j += 1
                else:
                    break
            # Postcode and town first, street last ("ք. Արմավիր, 1821, Գարեգին Նժդեհի 46",
            # "125009, Moscow, Tverskaya 7"): a postal line just before the street counts.
            lead = list(
                itertools.takewhile(
                    lambda k: k not in used and segs[k].kind in _LEADING,
                    range(i - 1, max(i - 4, -1), -1),
                )
            )
            postal = [k for k in lead if _leads_a_street(segs[k])]
            if postal:
                block = [*range(postal[-1], i), *block]
            kinds = [segs[k].kind for k in block]
            strong = [k for k in kinds if k in _STRONG]
            streets = [k for k in kinds if k in ("street", "street_weak")]
            if not strong and len(streets) < 2:
                continue
            if kinds.count("street_weak") == len(block):
                continue
            # A trailing run of towns with nothing after it is prose, not an address line.
            while block and segs[block[-1]].kind in ("town", "filler") and not strong:
                block.pop()
            used.update(block)
            out.extend(self._emit(segs[k]) for k in block)
            for k in block[1:]:
                # "Avenida Ivo Reis, 77": the house number on its own after the street.
                if segs[k].kind == "filler" and segs[k - 1].kind in _STREETISH:
                    number = text[segs[k].start : segs[k].end]
                    if _HOUSE_NUMBER.fullmatch(number):
                        out.append([self._result("STREET_ADDRESS", segs[k].start, segs[k].end)])
        for i in range(1, len(segs)):
            # "Los Genets, 12290 Pont de Salars", "Keldnaholt, IS-112 Reykjavik": a house or
            # estate name has no number; it is the line just before a postal line with a town.
            if i - 1 not in used and _house_name(text, segs[i - 1], segs[i]):
                used.update((i - 1, i))
                out.append([self._result("STREET_ADDRESS", segs[i - 1].start, segs[i - 1].end)])
                out.append(self._emit(segs[i]))
        for i, seg in enumerate(segs):
            # A postcode on its own counts with a country or state, or when it opens an
            # address field ('address "364024, ChR, Grozny, ..."', as post-Soviet addresses
            # start).
            if i not in used and seg.kind == "postal" and (seg.strong or seg.labelled):
                out.append(self._emit(seg))
        for m in _INLINE.finditer(text):
            # "13 April 2007" is a date; "In 1999 Smith won 3" no address: a year-like house
            # number ("2042 Sauarvegen 142 Apt. 998") counts only with a unit after it.
            if _YEAR.fullmatch(m.group("num")) and not m.group("unit"):
                continue
            if not _MONTH_WORD.search(m.group(0)) and _named_after(m):
                out.append([self._result("STREET_ADDRESS", m.start(), m.end())])
        for m in _RESIDENCE.finditer(text):
            if not _YEAR.fullmatch(m.group("addr").split()[-1]):  # "moved to Paris in 1952"
                out.append([self._result("STREET_ADDRESS", m.start("addr"), m.end("addr"))])
        for m in _NUMBER_COMMA_STREET.finditer(text):
            if not _YEAR.fullmatch(m.group("num")):  # "In 1999, avenue closures ..."
                out.append([self._result("STREET_ADDRESS", m.start("addr"), m.end("addr"))])
        for m in _GRID_STREET.finditer(text):
            out.append([self._result("STREET_ADDRESS", m.start("street"), m.end("street"))])
            if m.group("code"):
                out.append([self._result("POSTCODE", m.start("code"), m.end("code"))])
                out.append([self._result("LOCATION", m.start("place"), m.end("place"))])
        for m in _CORNER.finditer(text):
            out.append([self._result("STREET_ADDRESS", m.start("addr"), m.end("addr"))])
        for m in _CODE_CUE.finditer(text):
            out.append([self._result("POSTCODE", m.start("code"), m.end("code"))])
        for m in _TOWN_CODE.finditer(text):
            place_end = m.end("place") - (len(m.group("place")) - len(m.group("place").rstrip()))
            out.append(
                [
                    self._result("LOCATION", m.start("place"), place_end),
                    self._result("POSTCODE", m.start("code"), m.end("code")),
                ]
            )
        # "کرمان 937" closing an Iranian block reads as a street and its house number; the
        # layout showed the number to be the postcode.
        return [
            r
            for group in out
            for r in group
            if r.entity_type != "STREET_ADDRESS"
            or not any(r.start < s and r.end == e for s, e in layout_codes)
        ]

    def _emit(self, seg: _Segment) -> list[Any]:
        if seg.kind in _STREETISH:
            return [self._result("STREET_ADDRESS", seg.start, seg.end)]
        found = []
        if seg.code is not None:
            found.append(self._result("POSTCODE", *seg.code))
        if seg.place is not None:
            found.append(self._result("LOCATION", *seg.place))
        return found
