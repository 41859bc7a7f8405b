"""What is not personal data, however much it looks like a name: the over-scrubbing policy.

On real public text (Debian copyright files, changelogs, AUTHORS files, mail) spaCy's small
model calls software, licences, header fields and nationalities people and places: "Postfix",
"Red Hat", "MIT License", "Classifier:", "Irish". Replacing them costs the synthetic data its
meaning and buys no privacy. The policy (``docs/scrubbing-policy.md``) says what is never
personal data on its own, and :func:`not_personal` applies it to a detected span:

* software and product names: every Debian package name (63,697 in bookworm, words split at
  dashes, kept when three letters or longer) plus a hand list of vendors, products and
  protocols (:data:`PRODUCTS`);
* licence and header-field vocabulary (:data:`LICENCE_WORDS`, :data:`HEADER_FIELDS`);
* weekday and month names alone, colour names and ``#rrggbb`` colours, version numbers;
* language names: the English names of the ISO 639-2 languages ("German", "Swiss French",
  "Central Kurdish"), from Debian's iso-codes (a committed asset, ``languages.txt.gz``), and
  the words ``language`` and ``locale`` (:data:`LANGUAGE_WORDS`). A locale file says "German
  locale for Austria" and spaCy reads a person there.

A span is exempt only when *every* word of it is in that vocabulary, and a word that is only a
package name, not on the hand lists, must not be a known first name ("Eric", "Kate" and "Hugo"
are package names and first names: they stay names). Patterns
with a checksum or a fixed shape (e-mail, phone, card, IBAN) are never exempted: the policy
applies to the statistical and lexicon detections of names, places and groups only.

The package words are a committed asset (``assets/names/software.txt.gz``) derived by
:func:`build` from ``apt-cache pkgnames``, so the scrubber does not need apt at run time; the
language words likewise (:func:`build_languages` from ``/usr/share/iso-codes``). Unlike package
words, language words win over the first-name list, which holds "German", "Danish" and "Swiss":
a span made only of language names is a language ("Swiss French"), while a name beside one stays
a name ("Talachan Mon": "talachan" is no language word).
"""

from __future__ import annotations

import gzip
import re
import subprocess
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = [
    "FILE_EXTENSIONS",
    "HEADER_FIELDS",
    "LANGUAGE_WORDS",
    "LEGAL_FORM",
    "LICENCE_WORDS",
    "ORGANISATION_WORD",
    "PRODUCTS",
    "build",
    "build_languages",
    "is_file_name",
    "not_personal",
]


def _words(block: str) -> frozenset[str]:
    return frozenset(block.casefold().split())


#: Vendors, products, protocols and projects that the package list spells differently or lacks.
PRODUCTS = _words(
    """
    red hat redhat suse opensuse ubuntu debian fedora centos gentoo slackware mandrake mandriva
    microsoft windows macos mac os osx ios android apple google gmail yahoo hotmail outlook
    msn aol ibm oracle sun solaris sunos hp compaq dell intel amd nvidia cisco novell netscape
    mozilla firefox thunderbird chrome chromium opera safari explorer msie linux unix bsd freebsd
    netbsd openbsd posix gnu fsf gnome kde xfce x11 xorg xfree86 wayland systemd sysvinit
    postfix sendmail exim qmail procmail fetchmail spamassassin razor pyzor dcc mailman
    majordomo listserv mutt pine elm imap pop pop3 smtp esmtp lmtp http https ftp sftp ssh
    ssl tls dns tcp udp ip ipv4 ipv6 mime uucp nntp usenet irc xmpp jabber ldap kerberos
    html xml xhtml css json yaml utf ascii unicode iso ansi ieee ietf rfc w3c ecma
    python perl ruby java javascript php tcl lua rust golang haskell ocaml lisp scheme erlang
    fortran cobol pascal delphi basic c++ c# cython pypy jython numpy scipy pandas django flask
    github gitlab bitbucket sourceforge launchpad savannah salsa pypi cpan npm maven
    apache nginx lighttpd tomcat mysql postgresql postgres sqlite mariadb mongodb redis
    openssl gnutls openssh gnupg gpg pgp bugtraq slashdot freshmeat wired fork zdnet cnet
    pentium athlon celeron xeon sparc powerpc arm mips alpha itanium amd64 i386 x86
    vim emacs xemacs nano gcc clang llvm gdb make cmake autoconf automake libtool
    lintian dpkg apt rpm yum aptitude synaptic cvs svn subversion git mercurial bazaar
    """
)

#: Licence vocabulary: licence names are not people ("MIT License", "Artistic", "General Public").
LICENCE_WORDS = _words(
    """
    license licence licensed licenses licenses mit bsd gpl lgpl agpl mpl epl cddl apache artistic
    mozilla public general lesser library affero academic eclipse common development
    distribution creative commons attribution sharealike noncommercial zlib isc expat
    unlicense wtfpl boost osi approved copyright copyleft foundation software free open source
    version later
    """
)

#: Header field names of mail, Debian control and copyright files and Python package metadata.
HEADER_FIELDS = _words(
    """
    from to cc bcc subject date reply-to sender received message-id in-reply-to references
    return-path delivered-to x-mailer user-agent mime-version content-type organization
    content-transfer-encoding list-id list-unsubscribe list-subscribe list-post list-help
    list-archive precedence errors-to x-spam-status x-spam-level importance priority
    files copyright license comment upstream-name upstream-contact source format disclaimer
    maintainer uploaders section standards-version homepage vcs-git vcs-browser
    build-depends depends recommends suggests conflicts breaks replaces provides description
    metadata-version name version summary home-page author author-email maintainer-email
    classifier requires-dist requires-python project-url provides-extra keywords platform
    download-url license-file license-expression dynamic description-content-type
    """
)

_WEEKDAYS_MONTHS = _words(
    """
    monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs
    fri sat sun january february march april may june july august september october november
    december jan feb mar apr jun jul aug sep sept oct nov dec
    """
)

# CSS/HTML colour names (the 16 basic ones and common extended ones).
_COLOURS = _words(
    """
    black silver gray grey white maroon red purple fuchsia green lime olive yellow navy blue
    teal aqua orange pink brown gold violet indigo cyan magenta beige ivory khaki lavender
    crimson coral salmon tan turquoise
    """
)

#: File-name endings: "LICENSE.md", "aors_n.asm" and "config.status" are files, not names or
#: web sites (several are also top-level domains, which misleads URL patterns).
FILE_EXTENSIONS = _words(
    """
    as asm c h cc cpp py pl pm rb rs sh st md rst txt in am ac mk js ts go so o a d el java
    class jar xml yml yaml json cfg conf ini log diff patch status rest html htm css png jpg gif
    svg pdf tex gz bz2 xz zip tar deb rpm
    """
)
_FILE_NAME = re.compile(r"[\w.+-]+\.([a-z0-9]{1,6})", re.IGNORECASE)

LANGUAGE_WORDS = _words("language languages locale locales")
"""Hand list beside the ISO names: what a locale or translation header calls itself."""

LEGAL_FORM = (
    r"(?:Inc\.?|Ltd\.?|LLC|GmbH|AG|S\.?A\.?|B\.?V\.?|Corp\.?|Ltda\.?|S\.?L\.?|SARL"
    r"|S\.?p\.?A\.?|S\.?r\.?l\.?|Pty\.?|K\.?K\.?|ApS|e\.\s?V\.)"
)
"""A company's legal form, which may follow its name after a comma ("FarsiWeb, Inc.")."""

ORGANISATION_WORD = (
    r"(?:Foundation|Association|Laborator(?:y|ies)|Institute|University|Society|Consortium"
    r"|Committee|Council|College|Academy|Agency|Bureau|Ministry|Corporation|Team|Project"
    r"|Systems|Institut[eo]?|Istituto|Universi(?:dad|dade|tà|té|tät|teit|tet)"
    r"|Fundaci[oó]n|Funda[cç][aã]o|Fondation|Fondazione|Stiftung|Stichting|Verein|Verband"
    r"|Gesellschaft|Forbund|Forening|Förening|Selskab|Selskap|Sociedad|Société|Società"
    r"|Asociaci[oó]n|Associa[cç][aã]o|Associazione|Normalisation|Standards?"
    r"|\w+(?:forbund|forening|förening|institut|verband|verein|gesellschaft|stiftung)"
    rf"|{LEGAL_FORM})"
)
"""An organisation's designator (a regular expression), in the languages of the locale and
copyright files read so far, German and Nordic compounds included ("Normungsinstitut",
"Standardiseringsforbund"): a name that goes on into one names the organisation, not a
person, and a line holding one is no house name."""

_LOCALE_CODE = re.compile(r"[a-z]{2,3}_[A-Z]{2}(?:\.[\w-]+)?(?:@\w+)?")

_CURATED = PRODUCTS | LICENCE_WORDS | HEADER_FIELDS | _WEEKDAYS_MONTHS | _COLOURS | LANGUAGE_WORDS

_HEX_COLOUR = re.compile(r"#?(?:[0-9a-f]{3}|[0-9a-f]{6})", re.IGNORECASE)
_VERSION = re.compile(r"v?\d+(?:\.\d+)+[a-z]?\d*", re.IGNORECASE)
_SPLIT = re.compile(r"[\s/]+")


def _asset(name: str = "software.txt.gz") -> Path:
    return Path(str(resources.files("privsynth.server") / "assets" / "names" / name))


def _asset_words(name: str) -> frozenset[str]:
    try:
        with gzip.open(_asset(name), "rt", encoding="utf-8") as fh:
            return frozenset(line.rstrip("\n") for line in fh if line.strip())
    except FileNotFoundError:
        return frozenset()


@lru_cache(maxsize=1)
def software_words() -> frozenset[str]:
    """Words of Debian package names (the committed asset) and :data:`PRODUCTS`."""
    return _asset_words("software.txt.gz") | PRODUCTS


@lru_cache(maxsize=1)
def language_words() -> frozenset[str]:
    """Words of the ISO 639-2 language names (the committed asset)."""
    return _asset_words("languages.txt.gz")


@lru_cache(maxsize=1)
def _winning_words() -> frozenset[str]:
    """Words exempt even when the first-name list holds them: hand lists and language names."""
    return _CURATED | language_words()


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    return software_words() | _winning_words()


def is_file_name(text: str) -> bool:
    """Whether ``text`` is a file name with an extension of :data:`FILE_EXTENSIONS`."""
    file_name = _FILE_NAME.fullmatch(text)
    return file_name is not None and file_name.group(1).casefold() in FILE_EXTENSIONS


def not_personal(  # noqa: PLR0911
    span: str, first_names: frozenset[str] = frozenset(), *, software: bool = True
) -> bool:
    """True when ``span`` is, by the policy, not personal data on its own.

    Args:
        span: The detected text (a name, place or group found by spaCy or a lexicon).
        first_names: Case-folded first names; a span with one of them stays personal.
        software: Whether package words count; off where the position already says person
            (a sign-off line "-Dave": "dave" is also a package).
    """
    text = span.strip().strip(".,;:!?\"'()[]<>")
    if not text:
        return False
    if _HEX_COLOUR.fullmatch(text) and (text.startswith("#") or not text.isdigit()):
        return text.startswith("#") or text.casefold() in _COLOURS
    if _VERSION.fullmatch(text) or _LOCALE_CODE.fullmatch(text):
        return True
    if is_file_name(text):
        return True
    words = [w.strip(".,;:!?\"'()") for w in _SPLIT.split(text.casefold())]
    words = [w for w in words if w]
    if not words:
        return False
    winning = _winning_words()
    vocabulary = _vocabulary() if software else winning
    for word in words:
        if len(word) == 1:
            continue  # "MacOS X", an initial: neither side of the question
        if word in winning:
            # The hand lists and language names win over the name lists ("Red Hat", "MIT",
            # "Fri", "German": the first-name list holds Germán and Danish too).
            continue
        if word in first_names:
            return False
        if word not in vocabulary and not all(
            part in vocabulary for part in word.split("-") if part
        ):
            return False
    return True


_PACKAGE_AFFIXES = re.compile(
    r"^(?:lib|python3?-|golang-|node-|r-cran-|r-bioc-|ruby-|php-|fonts-|texlive-|gir1\.2-"
    r"|elpa-|haskell-|libghc-|ocaml-|librust-|rust-)|(?:-perl|-java|-dev|-doc|-common|-data)$"
)


def build(out: Path) -> int:  # pragma: no cover - a maintainer's tool
    """Write the package-word asset from ``apt-cache pkgnames``; returns the word count."""
    names = subprocess.run(
        ["apt-cache", "pkgnames"], check=True, capture_output=True, text=True
    ).stdout.split()
    words: set[str] = set()
    for name in names:
        stem = _PACKAGE_AFFIXES.sub("", name.casefold())
        stem = _PACKAGE_AFFIXES.sub("", stem)
        # The whole name ("libavif", "libmnl") as well as its words without affixes.
        for piece in [*re.split(r"[-+.]", name.casefold()), *re.split(r"[-+.]", stem)]:
            part = piece.rstrip("0123456789")
            if len(part) >= 3 and part.isalpha():
                words.add(part)
    return _write_words(out, words)


def _write_words(out: Path, words: set[str]) -> int:
    """Write a word asset: sorted, one per line, gzip without a timestamp (reproducible)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write("".join(f"{w}\n" for w in sorted(words)).encode("utf-8"))
    return len(words)


# Words of ISO 639-2 entries that name no language ("Not applicable", "Uncoded languages").
_ISO_FILLER = _words(
    "and the for not applicable content linguistic uncoded undetermined multiple special "
    "reserved local use other based"
)


def build_languages(out: Path) -> int:  # pragma: no cover - a maintainer's tool
    """Write the language-word asset from Debian's iso-codes (ISO 639-2); returns the count."""
    import json

    table = json.loads(Path("/usr/share/iso-codes/json/iso_639-2.json").read_text("utf-8"))
    words: set[str] = set()
    for entry in table["639-2"]:
        for name in entry["name"].split(";"):
            for word in re.split(r"[\s,()]+", name.casefold()):
                if len(word) >= 3 and word.isalpha() and word not in _ISO_FILLER:
                    words.add(word)
    return _write_words(out, words)


if __name__ == "__main__":  # pragma: no cover
    print(build(_asset()))
