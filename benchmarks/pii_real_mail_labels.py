"""Hand-written labels of the ``mail`` register and the script that turns them into spans.

Each record drawn by ``pii_real_mail.py`` was read, span by span, under
``docs/pii-labelling-guideline.md``, and what was read is written below as data: per record id,
the (value, type) pairs it contains. No scrubber or PII detector was run on the records; the
labels are what a reader saw. A record with no personal data has an empty list (it measures
over-scrubbing).

Turning values into spans is mechanical, so it is done here rather than by hand-counting offsets:
every occurrence of a value at word boundaries (case-sensitive) becomes a span. Two forms need
more than a bare value:

* ``"«value» context"``: the text between ``«`` and ``»`` is the value, and only occurrences
  followed or preceded by the written context are labelled. It pins a value that also occurs
  where it is not personal data (a first name that is also a common word).
* Overlaps: an occurrence inside a longer labelled one is dropped (a name inside an e-mail
  address is part of the address, as the guideline says), so ``kre`` as a person's handle is not
  labelled inside ``kre@munnari.OZ.AU``; two occurrences that overlap without one holding the
  other are an error.

A value that is not found in its record, a record without an entry, or an entry without a record
is an error, so a typo cannot silently drop a label.

Run::

    .venv/bin/python benchmarks/pii_real_mail_labels.py build/mail-unlabelled.jsonl
    .venv/bin/python benchmarks/pii_real_mail_labels.py build/mail-unlabelled.jsonl --review ID

The first writes ``benchmarks/data/pii_real/mail.jsonl`` and prints the span counts per type;
the second prints one record with its spans marked, for re-reading.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

OUT = Path(__file__).parent / "data" / "pii_real" / "mail.jsonl"

P = "PERSON"
E = "EMAIL_ADDRESS"
PH = "PHONE_NUMBER"
SA = "STREET_ADDRESS"
PC = "POSTCODE"
LOC = "LOCATION"
DT = "DATE_TIME"
IP = "IP_ADDRESS"
URL = "URL"
TYPES = frozenset({P, E, PH, SA, PC, LOC, DT, IP, URL, "CREDIT_CARD", "IBAN_CODE", "US_SSN"})

Label = tuple[str, str]

# Per record id, in the order pii_real_mail.py draws them (``# [n]`` is that position); a comment
# above an entry says why a borderline value is or is not labelled.
LABELS: dict[str, list[Label]] = {
    # [0]
    "mail:easy-ham-2:00322": [
        ("bryan roycroft", P),
        ("bryanroycroft@yahoo.com.au", E),
        ("ilug@linux.ie", E),
        ("Sat, 10 Aug 2002 05:47:31 +1000 (EST)", DT),
        ("listmaster@linux.ie", E),
    ],
    # [1]
    "mail:easy-ham-1:00739": [
        ("Tom", P),
        ("tomwhore@slack.net", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 23 Sep 2002 18:46:14 -0400 (EDT)", DT),
    ],
    # [2] "MF>" quote prefix: initials of the quoted writer. "Cohen": Cohen v. California, named
    # after a person.
    "mail:easy-ham-1:00827": [
        ("Bill Stoddard", P),
        ("bill@wstoddard.com", E),
        ("Fork@Xent.Com", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 30 Sep 2002 17:46:11 -0400", DT),
        ("MF", P),
        ("Cohen", P),
    ],
    # [3] "FLC" is a band (Fun Lovin' Criminals), not a person.
    "mail:easy-ham-2:00091": [
        ("Ronan Waide", P),
        ("waider@waider.ie", E),
        ("Paul Jakma", P),
        ("paul@clubi.ie", E),
        ("kevin lyda", P),
        ("kevin+dated+1027629217.152a82@linux.ie", E),
        ("Aidan Kehoe", P),
        ("kehoea@parhasard.net", E),
        ("ilug@linux.ie", E),
        ("Sun, 21 Jul 2002 01:53:57 +0100", DT),
        ("July 21", DT),
        ("Waider", P),
        ("listmaster@linux.ie", E),
    ],
    # [4]
    "mail:easy-ham-2:00113": [
        ("Kenn Humborg", P),
        ("kenn@linux.ie", E),
        ("ilug@linux.ie", E),
        ("Sat, 20 Jul 2002 12:18:57 +0100", DT),
        ("Sat, Jul 20, 2002 at 10:47:36AM +0100", DT),
        ("Stephen Shirley", P),
        ("Kenn", P),
        ("listmaster@linux.ie", E),
    ],
    # [5] the sign-off "L." (one initial alone) is not labelled.
    "mail:easy-ham-2:00475": [
        ("Liam Bedford", P),
        ("lbedford@lbedford.org", E),
        ("Anthony", P),
        ("ant@elivefree.net", E),
        ("ilug@linux.ie", E),
        ("Tue, 20 Aug 2002 15:31:17 +0100", DT),
        ("Tue, Aug 20, 2002 at 03:07:35PM +0100", DT),
    ],
    # [6]
    "mail:easy-ham-1:01467": [
        ("Paul Fries", P),
        ("paul@cwie.net", E),
        ("spamassassin-talk@example.sourceforge.net", E),
        ("Thu, 12 Sep 2002 12:07:22 -0700", DT),
        ("spamassassin-talk-admin@example.sourceforge.net", E),
        ("spamassassin-talk-admin@lists.sourceforge.net", E),
        ("Vince Puzzella", P),
        ("Thursday, September 12, 2002 11:23 AM", DT),
        ("Thursday, September 12, 2002 2:12 PM", DT),
    ],
    # [7] the signature says where Terry Colvin lives; the geocities page is his home page.
    "mail:easy-ham-1:02444": [
        ("Terry W. Colvin", P),
        ("fortean1@mindspring.com", E),
        ("zzzzteana@yahoogroups.com", E),
        ("Sun, 01 Dec 2002 18:03:10 -0700", DT),
        ("Leonard R. Cleavelin", P),
        ("Dave Palmer", P),
        ("Sierra Vista", LOC),
        ("Arizona", LOC),
        ("USA", LOC),
        ("fortean1@msn.com", E),
        ("http://www.geocities.com/Area51/Stargate/8958/index.html", URL),
        ("forteana-unsubscribe@egroups.com", E),
    ],
    # [8] "Sept 11" names an event by its date: a date with day precision, labelled.
    "mail:easy-ham-1:00658": [
        ("Chuck Murcko", P),
        ("chuck@topsail.org", E),
        ("Russell Turpin", P),
        ("deafbox@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Thu, 19 Sep 2002 11:01:49 -0700", DT),
        ("Chuck", P),
        ("Thursday, September 19, 2002, at 06:41 AM", DT),
        ("Robert Harley", P),
        ("Harley", P),
        ("Hanson", P),
        ("Sept 11", DT),
    ],
    # [9] the cities are where a chicken's parts went, not where a person lives.
    "mail:easy-ham-2:00708": [
        ("Jim Whitehead", P),
        ("ejw@cse.ucsc.edu", E),
        ("FoRK@xent.com", E),
        ("Tue, 23 Jul 2002 10:08:31 -0700", DT),
        ("Larry Barrett", P),
        ("Debbie Gage", P),
        ("Jim", P),
    ],
    # [10] "PASADENA, California" is a news dateline; the sign-off "R" is one initial alone.
    "mail:easy-ham-2:00931": [
        ("harley@argote.ch", E),
        ("Robert Harley", P),
        ("fork@spamassassin.taint.org", E),
        ("Tue, 30 Jul 2002 13:25:01 +0200 (CEST)", DT),
    ],
    # [11]
    "mail:easy-ham-1:01650": [
        ("guido@python.org", E),
        ("Guido van Rossum", P),
        ("Fri, 06 Sep 2002 11:06:26 -0400", DT),
        ("http://www.python.org/~guido/", URL),
    ],
    # [12] "harley" (lower case) is Robert Harley; "26.8.2002" is the article's date.
    "mail:easy-ham-1:00368": [
        ("Owen Byrne", P),
        ("owen@permafrost.net", E),
        ("Geege", P),
        ("grlygrl201@aol.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Thu, 29 Aug 2002 12:06:43 -0300", DT),
        ("harley", P),
        ("Owen", P),
        ("26.8.2002", DT),
        ("Sampsa Kurri", P),
        ("sampsa.kurri@muropaketti.com", E),
    ],
    # [13] "That Goddess Chick" is the sender's display name (a nickname); "Billy Goat Gruff" is a
    # fairy-tale joke, not labelled. frogstone.net is the sender's own domain (her address is
    # there) given in her signature: a personal home page, as is the ~felinda page.
    "mail:easy-ham-1:00132": [
        ("That Goddess Chick", P),
        ("felinda@frogstone.net", E),
        ("zzzzteana@yahoogroups.com", E),
        ("Mon, 7 Oct 2002 22:47:10 -0500", DT),
        ("Helen", P),
        ("Mike", P),
        ("Colin", P),
        ("Kelly", P),
        ("kelly", P),
        ("Fel", P),
        ("http://www.frogstone.net/Cafe/CafeForteana.html", URL),
        ("http://www.frogstone.net", URL),
        ("http://my.athenet.net/~felinda/WeirdPage.html", URL),
        ("forteana-unsubscribe@egroups.com", E),
    ],
    # [14] "newscientist" is a feed's name.
    "mail:easy-ham-1:02098": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 01 Oct 2002 08:02:02 -0000", DT),
    ],
    # [15] Mr. Burns and Krusty are cartoon characters, not natural persons; Carr is a player.
    "mail:easy-ham-1:02324": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Mon, 07 Oct 2002 08:00:23 -0000", DT),
        ("Carr", P),
    ],
    # [16] the ICQ number has no type in the guideline (not labelled); the Jabber ID is written as
    # an e-mail address and labelled as one.
    "mail:easy-ham-2:01257": [
        ("Mark Derricutt", P),
        ("mark@talios.com", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("Tue, 20 Aug 2002 07:41:57 +1200", DT),
        ("Monday, August 19, 2002 17:25:04 +0200", DT),
        ("Matthias Saou", P),
        ("matthias@egwn.net", E),
        ("talios@myjabber.net", E),
        ("RPM-List@freshrpms.net", E),
    ],
    # [17] the sign-off "--j." is one initial alone.
    "mail:easy-ham-1:01533": [
        ("yyyy@spamassassin.taint.org", E),
        ("Justin Mason", P),
        ("Randy Bush", P),
        ("randy@psg.com", E),
        ("spamassassin-talk@lists.sourceforge.net", E),
        ("Sat, 05 Oct 2002 18:17:53 +0100", DT),
    ],
    # [18] historical persons are persons; "March 28th, 193 AD" is a date with day precision. The
    # Baez URL holds a person's name. "W&R" (Whitehead & Russell, a book) and "jesus" in an idiom
    # are not labelled.
    "mail:easy-ham-1:00660": [
        ("Dave Long", P),
        ("dl@silcom.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Thu, 19 Sep 2002 12:50:46 -0700", DT),
        ("Dave", P),
        ("March 28th, 193 AD", DT),
        ("Didius Julianus", P),
        ("http://math.ucr.edu/home/baez/puzzles/5.html", URL),
        ("Gibbon", P),
        ("Coase", P),
    ],
    # [19] jmason.org and taint.org are the writer's home page and blog (URL); "taint.org" as the
    # list host in the body is a host of lists, not labelled.
    "mail:easy-ham-2:00487": [
        ("yyyy@spamassassin.taint.org", E),
        ("Justin Mason", P),
        ("iiu@taint.org", E),
        ("mice@crackmice.com", E),
        ("isoc@taint.org", E),
        ("zzzzteana@taint.org", E),
        ("Tue, 23 Jul 2002 14:04:23 +0100", DT),
        ("http://jmason.org/", URL),
        ("http://taint.org/", URL),
        ("IIU@iiu.taint.org", E),
    ],
    # [20]
    "mail:easy-ham-1:00943": [
        ("Ian Andrew Bell", P),
        ("fork@ianbell.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Wed, 9 Oct 2002 23:18:20 -0700", DT),
        ("hello@ianbell.com", E),
        ("Wed Oct 9, 2002  11:16:09 PM US/Pacific", DT),
        ("mike@michaelmoore.com", E),
        ("foib@ianbell.com", E),
        ("Michael", P),
        ("Jeb Bush", P),
    ],
    # [21]
    "mail:hard-ham-1:00233": [
        ("Ben Liblit", P),
        ("liblit@eecs.berkeley.edu", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("Tue, 08 Oct 2002 23:15:07 -0700", DT),
    ],
    # [22]
    "mail:easy-ham-2:01250": [
        ("Chris Kloiber", P),
        ("ckloiber@ckloiber.com", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("16 Aug 2002 19:09:23 -0400", DT),
        ("Fri, 2002-08-16 at 04:28", DT),
        ("Angles Puglisi", P),
        ("RPM-List@freshrpms.net", E),
    ],
    # [23] the corpus's own masked address is still an address (display name and address).
    "mail:hard-ham-1:00005": [
        ("iso17799@securityrisk.co.uk", E),
        ("Xxxxxxxx.Yyyyyyyyyyyyy@ruhr-uni-bochum.de", E),
        ("Mon, 24 Jun 2002 19:07:18 +0100", DT),
    ],
    # [24] "SoloCDM" is the writer's handle (display name and signature).
    "mail:easy-ham-2:00168": [
        ("SoloCDM", P),
        ("deedsmis@aculink.net", E),
        ("ilug@linux.ie", E),
        ("Wed, 31 Jul 2002 04:43:56 -0600", DT),
        ("listmaster@linux.ie", E),
    ],
    # [25] "Fox" is the writer's name as he signs; each log timestamp is a DATE_TIME, as is the
    # kernel build date.
    "mail:easy-ham-1:01554": [
        ("Fox", P),
        ("lds0062@cdc.net", E),
        ("razor-users@example.sourceforge.net", E),
        ("Mon, 26 Aug 2002 16:14:04 -0400", DT),
        ("Aug 26 10:28:09.225237", DT),
        ("Aug 26 10:28:09.225890", DT),
        ("Aug 26 10:28:09.226006", DT),
        ("Aug 26 10:28:09.229704", DT),
        ("Aug 26 10:28:09.230155", DT),
        ("Aug 26 10:28:09.231524", DT),
        ("Aug 26 10:28:09.231923", DT),
        ("Aug 26 10:28:09.233017", DT),
        ("Aug 26 10:28:09.233434", DT),
        ("Aug 26 10:28:09.233995", DT),
        ("Aug 26 10:28:09.234369", DT),
        ("Mon Nov 19 12:40:39 MST 2001", DT),
    ],
    # [26]
    "mail:easy-ham-1:01223": [
        ("Brian Fahrlander", P),
        ("kilroy@kamakiriad.com", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("Wed, 2 Oct 2002 04:18:52 -0500", DT),
        ("Wed, 2 Oct 2002 10:53:24 +0200", DT),
        ("Matthias Saou", P),
        ("matthias@egwn.net", E),
    ],
    # [27]
    "mail:easy-ham-2:00366": [
        ("Anders Holm", P),
        ("anders.holm@criticalpath.net", E),
        ("ilug@linux.ie", E),
        ("13 Aug 2002 06:54:28 +0100", DT),
        ("John", P),
        ("Anders", P),
        ("Mon, 2002-08-12 at 17:49", DT),
        ("John P. Looney", P),
    ],
    # [28] "g.b. shaw" is the quoted author.
    "mail:easy-ham-2:00039": [
        ("kevin lyda", P),
        ("kevin+dated+1027617313.021fb5@linux.ie", E),
        ("Rick Moen", P),
        ("rick@linuxmafia.com", E),
        ("social@linux.ie", E),
        ("Sat, 20 Jul 2002 18:15:12 +0100", DT),
        ("Fri, Jul 19, 2002 at 10:19:50PM -0700", DT),
        ("kevin", P),
        ("kevin@suberic.net", E),
        ("http://ie.suberic.net/~kevin", URL),
        ("g.b. shaw", P),
        ("listmaster@linux.ie", E),
    ],
    # [29] revision numbers (1.91.2.2) are version numbers.
    "mail:easy-ham-2:01339": [
        ("Justin Mason", P),
        ("yyyyason@users.sourceforge.net", E),
        ("spamassassin-commits@example.sourceforge.net", E),
        ("Wed, 21 Aug 2002 09:32:57 -0700", DT),
        ("21 Aug 2002 16:27:27 -0000", DT),
        ("21 Aug 2002 16:32:55 -0000", DT),
    ],
    # [30] a newsletter; New York is mentioned in passing.
    "mail:hard-ham-1:00194": [
        ("listmanager@shagmail.com", E),
        ("history@ls1.sendoutmail.com", E),
        ("Mon, 19 Aug 2002 12:15:13 -0500", DT),
        ("Tuesday, August 20, 2002", DT),
    ],
    # [31]
    "mail:easy-ham-2:00845": [
        ("Bill Kearney", P),
        ("wkearney99@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Wed, 24 Jul 2002 07:43:23 -0400", DT),
    ],
    # [32] the designer's office towns are not where a person lives; the nielsenhayden.com URL
    # holds persons' names.
    "mail:easy-ham-1:02380": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Wed, 09 Oct 2002 08:00:31 -0000", DT),
        ("Teresa", P),
        ("Joel Joves", P),
        ("http://nielsenhayden.com/makinglight/archives/2002_10.html#001484", URL),
    ],
    # [33]
    "mail:hard-ham-1:00225": [
        ("isu@eircom.net", E),
        ("social@linux.ie", E),
        ("Sun, 29 Sep 2002 19:11:17 +0100", DT),
        ("Iain", P),
        ("listmaster@linux.ie", E),
    ],
    # [34]
    "mail:easy-ham-1:01586": [
        ("Fox", P),
        ("lds0062@cdc.net", E),
        ("razor-users@example.sourceforge.net", E),
        ("Fri, 13 Sep 2002 10:26:09 -0400", DT),
        ("Razor-users@lists.sourceforge.net", E),
    ],
    # [35] "pudge" is a person's handle (posted by, copyright holder).
    "mail:easy-ham-1:01785": [
        ("pudge@perl.org", E),
        ("yyyy-use-perl@spamassassin.taint.org", E),
        ("Fri, 13 Sep 2002 02:00:23 +0000", DT),
        ("2002-09-13", DT),
        ("pudge", P),
        ("Wednesday September 11, @21:59", DT),
    ],
    # [36] slummerville/somerville is where both writers live ("when I moved in", "around
    # here"); the Triangle in NC is where Luis lived before.
    "mail:easy-ham-2:01037": [
        ("Luis Villa", P),
        ("louie@ximian.com", E),
        ("Jesse", P),
        ("jesse@fsck.com", E),
        ("fork@spamassassin.taint.org", E),
        ("15 Aug 2002 18:01:06 -0400", DT),
        ("Thu, 2002-08-15 at 17:53", DT),
        ("Thu, Aug 15, 2002 at 05:46:55PM -0400", DT),
        ("slummerville", LOC),
        ("somerville", LOC),
        ("Luis", P),
        ("Triangle", LOC),
        ("NC", LOC),
    ],
    # [37] "zawodny" names the blog's author (Jeremy Zawodny); his blog's URL holds his name.
    "mail:easy-ham-1:02367": [
        ("zawodny", P),
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 08 Oct 2002 08:01:20 -0000", DT),
        ("http://jeremy.zawodny.com/blog/archives/000225.html", URL),
        ("2002-10-07T12:30:42-08:00", DT),
    ],
    # [38]
    "mail:easy-ham-1:00218": [
        ("Padraig Brady", P),
        ("padraig.brady@corvil.com", E),
        ("Inn Share", P),
        ("shareinnn@yahoo.com", E),
        ("ilug@linux.ie", E),
        ("Wed, 28 Aug 2002 10:20:35 +0100", DT),
        ("Pádraig", P),
        ("listmaster@linux.ie", E),
    ],
    # [39]
    "mail:easy-ham-2:00119": [
        ("John Gay", P),
        ("johngay@eircom.net", E),
        ("ilug@linux.ie", E),
        ("Fri, 26 Jul 2002 23:24:30 +0100", DT),
    ],
    # [40]
    "mail:easy-ham-2:00700": [
        ("Jim Whitehead", P),
        ("ejw@cse.ucsc.edu", E),
        ("Owen Byrne", P),
        ("owen@permafrost.net", E),
        ("FoRK@xent.com", E),
        ("Tue, 23 Jul 2002 18:10:35 -0700", DT),
        ("Jim", P),
    ],
    # [41] the signature's name with its quoted nickname is one PERSON span.
    "mail:easy-ham-2:00973": [
        ("Adam L. Beberg", P),
        ("beberg@mithral.com", E),
        ("Robert Harley", P),
        ("harley@argote.ch", E),
        ("fork@spamassassin.taint.org", E),
        ("Wed, 7 Aug 2002 15:17:55 -0700 (PDT)", DT),
        ("Wed, 7 Aug 2002", DT),
        ('Adam L. "Duncan" Beberg', P),
        ("http://www.mithral.com/~beberg/", URL),
    ],
    # [42] a Message-ID is not an e-mail address (not labelled).
    "mail:easy-ham-1:00394": [
        ("Robert Elz", P),
        ("kre@munnari.OZ.AU", E),
        ("Chris Garrigues", P),
        ("cwg-dated-1030550301.a24bc5@DeepEddy.Com", E),
        ("exmh-workers@spamassassin.taint.org", E),
        ("Mon, 26 Aug 2002 14:00:18 +0700", DT),
        ("Fri, 23 Aug 2002 10:58:20 -0500", DT),
        ("kre", P),
        ("Exmh-workers@redhat.com", E),
    ],
    # [43] "wintermute" is the writer's handle.
    "mail:easy-ham-1:00043": [
        ("wintermute", P),
        ("cout@eircom.net", E),
        ("ilug@linux.ie", E),
        ("Fri, 23 Aug 2002 08:25:01 +0100", DT),
        ("Peter", P),
    ],
    # [44]
    "mail:easy-ham-2:00303": [
        ("Brian O'Donoghue", P),
        ("Brian.ODonoghue@kbs.ie", E),
        ("ilug@linux.ie", E),
        ("Fri, 9 Aug 2002 10:27:38 +0100", DT),
        ("EW Dijkstra", P),
    ],
    # [45]
    "mail:easy-ham-2:00115": [
        ("Niall O Broin", P),
        ("niall@linux.ie", E),
        ("ilug@linux.ie", E),
        ("Fri, 19 Jul 2002 23:47:39 +0100", DT),
        ("Fri, Jul 19, 2002 at 09:53:16PM +0100", DT),
        ("awhalley@eircom.net", E),
    ],
    # [46] people.redhat.com/ckloiber is the writer's own page.
    "mail:easy-ham-2:01240": [
        ("Chris Kloiber", P),
        ("ckloiber@ckloiber.com", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("16 Aug 2002 03:04:37 -0400", DT),
        ("Thu, 2002-08-15 at 10:53", DT),
        ("Erik Williamson", P),
        ("ftp://people.redhat.com/ckloiber", URL),
        ("RPM-List@freshrpms.net", E),
    ],
    # [47] "Autumn" is a professor's surname; Portland is where his college is, not his home;
    # "van der Waals forces" is a physics term.
    "mail:easy-ham-1:00341": [
        ("Eirikur Hallgrimsson", P),
        ("eh@mad.scientist.com", E),
        ("FoRK@xent.com", E),
        ("Tue, 27 Aug 2002 01:24:00 -0400", DT),
        ("«Autumn», assistant", P),
    ],
    # [48]
    "mail:easy-ham-2:00979": [
        ("Russell Turpin", P),
        ("deafbox@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Fri, 09 Aug 2002 14:08:22 +0000", DT),
        ("David Friedman", P),
        ("08/08/2002", DT),
        ("David", P),
    ],
    # [49] "hfb" and "ziggy" are posters' handles; yetanother.org/damian/ is Damian Conway's page.
    "mail:easy-ham-1:01762": [
        ("pudge@perl.org", E),
        ("yyyy-use-perl@spamassassin.taint.org", E),
        ("Sat, 24 Aug 2002 02:00:30 +0000", DT),
        ("2002-08-24", DT),
        ("Damian Conway", P),
        ("hfb", P),
        ("Friday August 23, @14:06", DT),
        ("Damian", P),
        ("http://yetanother.org/damian/", URL),
        ("ziggy", P),
        ("Friday August 23, @18:30", DT),
        ("Gregor J. Rothfuss", P),
    ],
    # [50]
    "mail:easy-ham-1:01641": [
        ("guido@python.org", E),
        ("Guido van Rossum", P),
        ("Fri, 06 Sep 2002 10:31:22 -0400", DT),
    ],
    # [51] "[RIAA President Cary] Sherman": first name and surname as separate spans.
    "mail:easy-ham-1:00077": [
        ("Tom", P),
        ("tomwhore@slack.net", E),
        ("fork@spamassassin.taint.org", E),
        ("vox@mindvox.com", E),
        ("Fri, 23 Aug 2002 19:01:45 -0400 (EDT)", DT),
        ("John Malcolm", P),
        ("Malcolm", P),
        ("Cary", P),
        ("Sherman", P),
    ],
    # [52]
    "mail:easy-ham-1:02334": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Mon, 07 Oct 2002 08:00:39 -0000", DT),
        ("2002-10-06T18:12:59+01:00", DT),
    ],
    # [53] the signature says where Alan Jackson lives; www.ajackson.org holds his name.
    "mail:easy-ham-2:00577": [
        ("Alan Jackson", P),
        ("ajackson@oplnk.net", E),
        ("webmake-talk@example.sourceforge.net", E),
        ("Sun, 4 Aug 2002 21:25:26 -0500", DT),
        ("Alan K. Jackson", P),
        ("alan@ajackson.org", E),
        ("www.ajackson.org", URL),
        ("Houston", LOC),
        ("Texas", LOC),
        ("Blake", P),
        ("webmake-talk@lists.sourceforge.net", E),
    ],
    # [54] "07/13/2001" in the subject is exmh's release date.
    "mail:easy-ham-2:00723": [
        ("Hal DeVore", P),
        ("haldevore@acm.org", E),
        ("Chris Garrigues", P),
        ("cwg-dated-1027978302.cb328a@DeepEddy.Com", E),
        ("exmh-workers@spamassassin.taint.org", E),
        ("Wed, 24 Jul 2002 17:13:03 -0500", DT),
        ("07/13/2001", DT),
        ("Wed, 24 Jul 2002", DT),
        ("Chris", P),
        ("Hal", P),
        ("Exmh-workers@redhat.com", E),
    ],
    # [55] nosenseofplace.com is the home page of the Jens who is thanked.
    "mail:easy-ham-1:02403": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Wed, 09 Oct 2002 08:00:34 -0000", DT),
        ("Jens", P),
        ("http://www.nosenseofplace.com", URL),
    ],
    # [56]
    "mail:easy-ham-2:01310": [
        ("Olivier Nicole", P),
        ("Olivier.Nicole@ait.ac.th", E),
        ("joele@iws-irms.com", E),
        ("spamassassin-talk@example.sourceforge.net", E),
        ("Wed, 24 Jul 2002 08:43:50 +0700 (ICT)", DT),
        ("Olivier", P),
        ("Spamassassin-talk@lists.sourceforge.net", E),
    ],
    # [57] the sign-off "sc" is the writer's initials.
    "mail:easy-ham-1:01614": [
        ("Samuel Checker", P),
        ("sc@pffcu.org", E),
        ("razor-users@example.sourceforge.net", E),
        ("Wed, 9 Oct 2002 09:15:03 -0400 (EDT)", DT),
        ("sc", P),
        ("Razor-users@lists.sourceforge.net", E),
    ],
    # [58]
    "mail:easy-ham-2:01064": [
        ("Joseph S. Barrera III", P),
        ("joe@barrera.org", E),
        ("Gordon Mohr", P),
        ("gojomo@usa.net", E),
        ("fork@spamassassin.taint.org", E),
        ("Sun, 18 Aug 2002 09:00:34 -0700", DT),
        ("Joe", P),
    ],
    # [59]
    "mail:easy-ham-2:00137": [
        ("Paul Kelly", P),
        ("longword@esatclear.ie", E),
        ("ilug@linux.ie", E),
        ("Mon, 29 Jul 2002 05:02:23 +0100", DT),
        ("Matthew French", P),
        ("Paul", P),
        ("listmaster@linux.ie", E),
    ],
    # [60] vipul.net is the writer's home page; William Gibson is quoted.
    "mail:easy-ham-2:00558": [
        ("Vipul Ved Prakash", P),
        ("mail@vipul.net", E),
        ("Sven", P),
        ("sven@dmv.com", E),
        ("razor-users@example.sourceforge.net", E),
        ("Wed, 31 Jul 2002 19:31:46 -0700", DT),
        ("Wed, Jul 31, 2002 at 09:44:08PM -0400", DT),
        ("http://vipul.net/", URL),
        ("William Gibson", P),
    ],
    # [61] the quoted From line breaks an address over two lines: one span with the line break.
    "mail:easy-ham-1:00965": [
        ("Brent Welch", P),
        ("welch@panasas.com", E),
        ("Robert Elz", P),
        ("kre@munnari.OZ.AU", E),
        ("Chris Garrigues", P),
        ("cwg-dated-1030976555.34ad5b@DeepEddy.Com", E),
        ("exmh-workers@redhat.com", E),
        ("Wed, 28 Aug 2002 10:32:42 -0700", DT),
        ("Wed, 28 Aug 2002 09:22:34 -0500", DT),
        ("cwg-dated-1030976555.34ad5b@DeepEddy.Co\nm", E),
    ],
    # [62]
    "mail:easy-ham-1:01281": [
        ("Matthias Saou", P),
        ("matthias@rpmforge.net", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("Mon, 7 Oct 2002 20:06:42 +0200", DT),
        ("Ville", P),
        ("Matthias", P),
        ("RPM-List@freshrpms.net", E),
    ],
    # [63] "Andrey G. Sergeev" and his nickname "Andris" are separate spans; "BM>" is Bob Musser's
    # quote prefix; andris.msk.ru holds his nickname.
    "mail:easy-ham-1:00066": [
        ("Andrey G. Sergeev", P),
        ("Andris", P),
        ("andris@aernet.ru", E),
        ("Bob Musser", P),
        ("DNS-swap@lists.ironclad.net.au", E),
        ("Fri, 30 Aug 2002 19:39:57 +0400", DT),
        ("Friday, August 30, 2002, 7:25:31 PM", DT),
        ("BobM@dbsinfo.com", E),
        ("BM", P),
        ("http://www.andris.msk.ru/", URL),
        ("dns-swap-off@lists.ironclad.net.au", E),
    ],
    # [64]
    "mail:easy-ham-1:00801": [
        ("Bill Humphries", P),
        ("bill@whump.com", E),
        ("Gary Lawrence Murphy", P),
        ("garym@canada.com", E),
        ("gbolcer@endeavors.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Sat, 28 Sep 2002 14:37:19 -0700", DT),
        ("Saturday, September 28, 2002, at 12:54 PM", DT),
    ],
    # [65] the display name "HAMILTON,DAVID" as written is one span; "(HP-Ireland,ex2)" is his
    # employer's unit.
    "mail:easy-ham-1:00236": [
        ("HAMILTON,DAVID", P),
        ("david_hamilton3@hp.com", E),
        ("ilug@linux.ie", E),
        ("Wed, 28 Aug 2002 13:52:32 +0100", DT),
        ("David", P),
        ("David Hamilton", P),
        ("listmaster@linux.ie", E),
    ],
    # [66]
    "mail:easy-ham-1:00825": [
        ("Bill Kearney", P),
        ("wkearney99@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 30 Sep 2002 15:55:47 -0400", DT),
        ("Owen Byrne", P),
        ("owen@permafrost.net", E),
    ],
    # [67] "ro" (Rohit) is addressed, "gg" is Geege's sign-off; Marla and Jack are characters in a
    # film script, not labelled.
    "mail:easy-ham-1:00634": [
        ("Geege Schuman", P),
        ("geege@barrera.org", E),
        ("Tom", P),
        ("tomwhore@slack.net", E),
        ("R. A. Hettinga", P),
        ("rah@shipwright.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Wed, 18 Sep 2002 21:30:02 -0400", DT),
        ("«ro»!", P),
        ("gg", P),
        ("fork-admin@xent.com", E),
        ("Wednesday, September 18, 2002 7:13 PM", DT),
        ("Wed, 18 Sep 2002", DT),
    ],
    # [68] the Lojban display name is the writer's handle, one span as written.
    "mail:easy-ham-2:00593": [
        ("cmeclax po'u le cmevi'u ke'umri", P),
        ("cmeclax@gmx.co.uk", E),
        ("razor-users@example.sourceforge.net", E),
        ("cmeclax@ixazon.dynip.com", E),
        ("Fri, 9 Aug 2002 00:43:39 -0400", DT),
        ("cmeclax", P),
        ("Razor-users@lists.sourceforge.net", E),
    ],
    # [69]
    "mail:easy-ham-1:00222": [
        ("David O'Callaghan", P),
        ("ocalladw@tcd.ie", E),
        ("ilug@linux.ie", E),
        ("Wed, 28 Aug 2002 10:48:13 +0100", DT),
        ("Fri, Aug 23, 2002 at 09:26:47AM +0100", DT),
        ("Padraig Brady", P),
        ("David", P),
        ("listmaster@linux.ie", E),
    ],
    # [70] the parenthesised credit is the submitter's user name on fark (a handle).
    "mail:easy-ham-1:01940": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Thu, 26 Sep 2002 15:28:47 -0000", DT),
        ("2002-09-26T12:27:22+01:00", DT),
        ("Some Ugly Guy", P),
    ],
    # [71]
    "mail:easy-ham-2:00770": [
        ("Robert Elz", P),
        ("kre@munnari.OZ.AU", E),
        ("exmh-users@spamassassin.taint.org", E),
        ("Tue, 06 Aug 2002 20:40:06 +0700", DT),
        ("Tue, 06 Aug 2002 09:04:58 +0100", DT),
        ("Marc Baaden", P),
        ("baaden@smplinux.de", E),
        ("kre", P),
        ("Exmh-users@redhat.com", E),
    ],
    # [72]
    "mail:easy-ham-1:00909": [
        ("Tom", P),
        ("tomwhore@slack.net", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 7 Oct 2002 16:45:02 -0400 (EDT)", DT),
    ],
    # [73] "CDale" is a list member's handle.
    "mail:easy-ham-1:00492": [
        ("Russell Turpin", P),
        ("deafbox@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Sat, 07 Sep 2002 19:07:29 +0000", DT),
        ("CDale", P),
        ("Geege", P),
        ("Beberg", P),
    ],
    # [74]
    "mail:easy-ham-1:01264": [
        ("Alvie", P),
        ("bishop12@prodigy.net", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("06 Oct 2002 20:17:07 -0500", DT),
        ("RPM-List@freshrpms.net", E),
    ],
    # [75] auracom.com/~teledyn is the writer's blog (URL); teledyn.com is his company's site.
    "mail:easy-ham-1:00574": [
        ("Gary Lawrence Murphy", P),
        ("garym@canada.com", E),
        ("Dave Long", P),
        ("dl@silcom.com", E),
        ("fork@spamassassin.taint.org", E),
        ("12 Sep 2002 15:43:00 -0400", DT),
        ("garym@teledyn.com", E),
        ("http://www.auracom.com/~teledyn", URL),
        ("Picasso", P),
    ],
    # [76]
    "mail:easy-ham-1:02136": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 01 Oct 2002 08:01:36 -0000", DT),
        ("2002-10-01T04:33:53+01:00", DT),
    ],
    # [77]
    "mail:easy-ham-1:01145": [
        ("Robert Elz", P),
        ("kre@munnari.OZ.AU", E),
        ("Hal DeVore", P),
        ("haldevore@acm.org", E),
        ("exmh-workers@spamassassin.taint.org", E),
        ("Tue, 01 Oct 2002 14:14:57 +0700", DT),
        ("Mon, 30 Sep 2002 14:53:33 -0500", DT),
        ("kre", P),
        ("Exmh-workers@redhat.com", E),
    ],
    # [78] Mountain View is where the writer lives (his service address); "whump" is his handle.
    "mail:easy-ham-2:00800": [
        ("Bill Humphries", P),
        ("bill@whump.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Fri, 19 Jul 2002 16:04:37 -0700", DT),
        ("Mountain View", LOC),
        ("whump", P),
    ],
    # [79] "rODbegbie"/"rOD" is the writer; groovymother.com is his blog.
    "mail:easy-ham-2:01299": [
        ("rODbegbie", P),
        ("rOD@arsecandle.org", E),
        ("Marc Perkel", P),
        ("marc@perkel.com", E),
        ("spamassassin-devel@lists.sourceforge.net", E),
        ("Tue, 23 Jul 2002 12:30:08 -0400", DT),
        ("rOD", P),
        ("http://www.groovymother.com/", URL),
        ("Spamassassin-devel@lists.sourceforge.net", E),
    ],
    # [80] the parenthesised credit is the submitter's user name on fark (a handle).
    "mail:easy-ham-1:02146": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 01 Oct 2002 08:01:24 -0000", DT),
        ("2002-09-30T11:09:22+01:00", DT),
        ("Doc Brown", P),
    ],
    # [81] "PKD" is Philip K. Dick's initials.
    "mail:easy-ham-2:01051": [
        ("Chris Arkenberg", P),
        ("carkenbe@adobe.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Sat, 17 Aug 2002 00:46:49 -0700", DT),
        ("PKD", P),
    ],
    # [82] example addresses are addresses; GPG fingerprints have no type (not labelled).
    "mail:easy-ham-2:00156": [
        ("kevin lyda", P),
        ("kevin+dated+1028542165.571dd7@linux.ie", E),
        ("David Neary", P),
        ("dneary@wanadoo.fr", E),
        ("ilug@linux.ie", E),
        ("Tue, 30 Jul 2002 11:09:23 +0100", DT),
        ("Tue, Jul 30, 2002 at 11:28:11AM +0200", DT),
        ("sales@company.com", E),
        ("info@company.com", E),
        ("tech@company.com", E),
        ("dave@company.com", E),
        ("kevin@ie.suberic.net", E),
        ("kevin@alphyra.com", E),
    ],
    # [83]
    "mail:hard-ham-1:00192": [
        ("listmanager@shagmail.com", E),
        ("mothlight@fastmail.fm", E),
        ("Mon, 19 Aug 2002 09:43:01 -0500", DT),
        ("Monday, August 19th, 2002", DT),
        ("editor@the-mouth.com", E),
        ("Jay Leno", P),
    ],
    # [84]
    "mail:easy-ham-2:00844": [
        ("Joseph S. Barrera III", P),
        ("joe@barrera.org", E),
        ("Robert Harley", P),
        ("harley@corton.inria.fr", E),
        ("fork@spamassassin.taint.org", E),
        ("Tue, 23 Jul 2002 17:47:35 -0700", DT),
    ],
    # [85]
    "mail:easy-ham-2:00218": [
        ("Padraig Brady", P),
        ("padraig.brady@corvil.com", E),
        ("ilug@linux.ie", E),
        ("Fri, 02 Aug 2002 09:40:52 +0100", DT),
        ("John P. Looney", P),
        ("Thu, Aug 01, 2002 at 04:03:07PM +0100", DT),
        ("http://www.iol.ie/~padraiga/pics/wild1.jpg", URL),
        ("http://www.iol.ie/~padraiga/pics/wild2.jpg", URL),
        ("Pádraig", P),
        ("listmaster@linux.ie", E),
    ],
    # [86] "diveintomark" is Mark Pilgrim's handle and his site's name.
    "mail:easy-ham-1:02242": [
        ("diveintomark", P),
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Thu, 03 Oct 2002 08:00:33 -0000", DT),
        ("http://diveintomark.org/archives/2002/10/02.html#cast_not_the_first_stone", URL),
        ("2002-10-02T09:30:52-05:00", DT),
        ("Kevin Richardson", P),
    ],
    # [87]
    "mail:easy-ham-1:00296": [
        ("Tom", P),
        ("tomwhore@slack.net", E),
        ("Adam L. Beberg", P),
        ("beberg@mithral.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Sat, 24 Aug 2002 10:57:13 -0400 (EDT)", DT),
        ("Sat, 24 Aug 2002", DT),
    ],
    # [88] "Mr. FoRK" is a poster's pseudonym (the "Mr." is part of it); "Adam\\nL. Beberg" is
    # one name broken over two lines.
    "mail:easy-ham-1:00379": [
        ("Reza B'Far", P),
        ("rbfar@ebuilt.com", E),
        ("Adam L. Beberg", P),
        ("beberg@mithral.com", E),
        ("Mr. FoRK", P),
        ("fork_list@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 2 Sep 2002 09:30:22 -0700", DT),
        ("fork-admin@xent.com", E),
        ("Adam\nL. Beberg", P),
        ("Sunday, September 01, 2002 9:01 PM", DT),
        ("Sun, 1 Sep 2002", DT),
        ('Adam L. "Duncan" Beberg', P),
        ("http://www.mithral.com/~beberg/", URL),
    ],
    # [89]
    "mail:easy-ham-1:01362": [
        ("Don Newcomer", P),
        ("newcomer@dickinson.edu", E),
        ("Spamassassin-talk@example.sourceforge.net", E),
        ("Wed, 28 Aug 2002 17:07:53 -0400 (EDT)", DT),
    ],
    # [90] "9/11" names an event by its date (labelled, as "Sept 11" elsewhere).
    "mail:easy-ham-2:00900": [
        ("Adam L. Beberg", P),
        ("beberg@mithral.com", E),
        ("Joseph S. Barrera III", P),
        ("joe@barrera.org", E),
        ("fork@spamassassin.taint.org", E),
        ("Thu, 25 Jul 2002 22:48:12 -0700 (PDT)", DT),
        ("Thu, 25 Jul 2002", DT),
        ("chris arkenberg", P),
        ("Adam", P),
        ("9/11", DT),
        ('Adam L. "Duncan" Beberg', P),
        ("http://www.mithral.com/~beberg/", URL),
    ],
    # [91]
    "mail:easy-ham-1:00310": [
        ("Joseph S. Barrera III", P),
        ("joe@barrera.org", E),
        ("R. A. Hettinga", P),
        ("rah@shipwright.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Juliet Barrera", P),
        ("juliet@cavy.com", E),
        ("Mon, 26 Aug 2002 09:56:55 -0700", DT),
    ],
    # [92] "TMF Otter" and "TMF Matt" are the instructors' board names (handles).
    "mail:hard-ham-1:00158": [
        ("Fool@MotleyFool.com", E),
        ("xxxxxx.yyyyyyyyyy@ruhr-uni-bochum.de", E),
        ("CS@FoolMart.com", E),
        ("Thu, 25 Jul 2002 14:16:03 -0400", DT),
        ("Bill Mann", P),
        ("TMF Otter", P),
        ("Matt Richey", P),
        ("TMF Matt", P),
    ],
    # [93]
    "mail:easy-ham-2:00273": [
        ("kevin lyda", P),
        ("kevin+dated+1029071609.d28773@ie.suberic.net", E),
        ("ilug@linux.ie", E),
        ("Tue, 6 Aug 2002 14:13:27 +0100", DT),
        ("Tue, Aug 06, 2002 at 02:04:11PM +0100", DT),
        ("Niall Brady", P),
        ("kevin", P),
        ("kevin@suberic.net", E),
        ("http://ie.suberic.net/~kevin", URL),
        ("g.b. shaw", P),
        ("listmaster@linux.ie", E),
    ],
    # [94] a quoted postal address in a signature; "Kirkland" also where the writer lives.
    "mail:easy-ham-2:01091": [
        ("Mr. FoRK", P),
        ("fork_list@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 19 Aug 2002 22:41:50 -0700", DT),
        ("John Hall", P),
        ("13464 95th Ave NE", SA),
        ("Kirkland", LOC),
        ("WA", LOC),
        ("98034", PC),
        ("Gordon", P),
    ],
    # [95]
    "mail:easy-ham-1:02178": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Wed, 02 Oct 2002 08:02:46 -0000", DT),
        ("Bush", P),
        ("2002-10-02T03:56:58+01:00", DT),
    ],
    # [96]
    "mail:easy-ham-1:02179": [
        ("zawodny", P),
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Wed, 02 Oct 2002 08:02:54 -0000", DT),
        ("http://jeremy.zawodny.com/blog/archives/000210.html", URL),
        ("2002-10-01T15:24:02-08:00", DT),
    ],
    # [97]
    "mail:easy-ham-1:00403": [
        ("Harig, Mark A.", P),
        ("maharig@idirect.net", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("Mon, 26 Aug 2002 19:31:49 -0400", DT),
        ("RPM-List@freshrpms.net", E),
    ],
    # [98] bugzilla's table splits two addresses over rows: the parts that read as addresses
    # ("devel@lists...", "contrib@msquadrat.de") are labelled, the "spamassassin-" stubs are not.
    # hughes-family.org holds a family name (Craig Hughes's domain): URL.
    "mail:easy-ham-1:01538": [
        ("bugzilla-daemon@hughes-family.org", E),
        ("spamassassin-devel@example.sourceforge.net", E),
        ("Tue,  8 Oct 2002 04:16:52 -0700 (PDT)", DT),
        ("http://www.hughes-family.org/bugzilla/show_bug.cgi?id=1075", URL),
        ("spamassassin-contrib@msquadrat.de", E),
        ("devel@lists.sourceforge.net", E),
        ("contrib@msquadrat.de", E),
        ("2002-10-08 04:16", DT),
        ("Spamassassin-devel@lists.sourceforge.net", E),
    ],
    # [99]
    "mail:easy-ham-1:01008": [
        ("Robert Elz", P),
        ("kre@munnari.OZ.AU", E),
        ("exmh-users@spamassassin.taint.org", E),
        ("Fri, 13 Sep 2002 02:03:07 +0700", DT),
        ("Wed, 11 Sep 2002 20:15:00 -0700", DT),
        ("Brent Welch", P),
        ("welch@panasas.com", E),
        ("kre", P),
        ("Exmh-users@redhat.com", E),
    ],
    # [100]
    "mail:easy-ham-2:00889": [
        ("Adam L. Beberg", P),
        ("beberg@mithral.com", E),
        ("Tom", P),
        ("tomwhore@slack.net", E),
        ("fork@spamassassin.taint.org", E),
        ("Thu, 25 Jul 2002 14:35:42 -0700 (PDT)", DT),
        ("Wed, 24 Jul 2002", DT),
        ("Sakiko Fukuda-Parr", P),
        ('Adam L. "Duncan" Beberg', P),
        ("http://www.mithral.com/~beberg/", URL),
    ],
    # [101] "root@spawn" is a shell prompt (user@host), not an e-mail address.
    "mail:easy-ham-1:01089": [
        ("Roy-Magne Mo", P),
        ("rmo@sunnmore.net", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("Tue, 05 Feb 2002 15:06:28 +0100", DT),
        ("Mark Derricutt", P),
        ("RPM-List@freshrpms.net", E),
    ],
    # [102]
    "mail:easy-ham-2:00498": [
        ("Brian O'Brien", P),
        ("obrienbrian@eircom.net", E),
        ("iiu@taint.org", E),
        ("Sat, 3 Aug 2002 21:47:02 +0100", DT),
        ("Brian", P),
        ("Martin Whelan", P),
        ("mwhelan@deisedesign.com", E),
        ("Saturday, August 03, 2002 9:32 PM", DT),
        ("20:18 03/08/02 +0100", DT),
        ("62.17.143.253", IP),
        ("14 July", DT),
        ("IIU@iiu.taint.org", E),
    ],
    # [103] "\\/ille Skyttä" is the writer's name, stylised; "ville.skytta at iki.fi" is an
    # obfuscated address.
    "mail:easy-ham-1:01034": [
        ("Ville Skyttä", P),
        ("ville.skytta@iki.fi", E),
        ("rpm-zzzlist@freshrpms.net", E),
        ("valhalla-list@spamassassin.taint.org", E),
        ("28 Aug 2002 23:48:57 +0300", DT),
        ("Gordon", P),
        ("\\/ille Skyttä", P),
        ("ville.skytta at iki.fi", E),
        ("RPM-List@freshrpms.net", E),
    ],
    # [104] the quote prefix "R>" is one initial alone (not labelled).
    "mail:easy-ham-2:00972": [
        ("Gary Lawrence Murphy", P),
        ("garym@canada.com", E),
        ("harley@argote.ch", E),
        ("Robert Harley", P),
        ("fork@spamassassin.taint.org", E),
        ("07 Aug 2002 17:33:21 -0400", DT),
        ("garym@teledyn.com", E),
        ("Pablo Picasso", P),
    ],
    # [105]
    "mail:easy-ham-2:00603": [
        ("Chip Paswater", P),
        ("turk182@chipware.net", E),
        ("razor-users@example.sourceforge.net", E),
        ("Thu, 8 Aug 2002 16:27:11 -0700", DT),
        ("Vipul", P),
        ("vipul", P),
        ("Razor-users@lists.sourceforge.net", E),
    ],
    # [106] "Dubya" is a nickname of a person; "July 2002" has month precision; "Baroness" is a
    # title (not in the span); the snopes URL is about Bush, not his page (not labelled).
    "mail:easy-ham-1:00037": [
        ("Manoj Kasichainula", P),
        ("manojk+fork@io.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Thu, 22 Aug 2002 15:04:02 -0700", DT),
        ("Thu, Aug 22, 2002 at 10:58:34PM +0200", DT),
        ("Robert Harley", P),
        ("Dubya", P),
        ("George W. Bush", P),
        ("Bush", P),
        ("Tony Blair", P),
        ("Blair", P),
        ("Jacques Chirac", P),
        ("Shirley Williams", P),
        ("Williams", P),
        ("Lloyd Grove", P),
        ("Alastair Campbell", P),
        ("July 2002", DT),
    ],
    # [107] the signature's postal address; "RAH" is the writer's initials.
    "mail:easy-ham-1:00756": [
        ("R. A. Hettinga", P),
        ("rah@shipwright.com", E),
        ("johnhall@evergo.net", E),
        ("fork@spamassassin.taint.org", E),
        ("dbs@philodox.com", E),
        ("Mon, 23 Sep 2002 23:34:53 -0400", DT),
        ("5:29 PM -0700 on 9/23/02", DT),
        ("John Hall", P),
        ("Rawls", P),
        ("Nozick", P),
        ("RAH", P),
        ("Quine", P),
        ("rah@ibuc.com", E),
        ("44 Farquhar Street", SA),
        ("Boston", LOC),
        ("MA", LOC),
        ("02131", PC),
        ("USA", LOC),
        ("Edward Gibbon", P),
    ],
    # [108] Doolin is where an event is, not where a person lives.
    "mail:easy-ham-1:00201": [
        ("Ronan Waide", P),
        ("waider@waider.ie", E),
        ("ilug@linux.ie", E),
        ("Tue, 27 Aug 2002 21:19:10 +0100", DT),
        ("Waider", P),
        ("Jamie Zawinski", P),
        ("listmaster@linux.ie", E),
    ],
    # [109]
    "mail:easy-ham-1:01565": [
        ("Theo Van Dinter", P),
        ("felicity@kluge.net", E),
        ("Josh Hildebrand", P),
        ("josh@jedi.net", E),
        ("razor-users@example.sourceforge.net", E),
        ("Thu, 5 Sep 2002 20:51:41 -0400", DT),
        ("Thu, Sep 05, 2002 at 05:11:32PM -0500", DT),
        ("Theo", P),
    ],
    # [110] fake headlines still name real persons; Isidore is a hurricane; newzoid.com is the
    # site discussed, not Daniel's page.
    "mail:easy-ham-1:01897": [
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Wed, 25 Sep 2002 08:03:44 -0000", DT),
        ("Rumsfeld", P),
        ("Gore", P),
        ("Lisa Riley", P),
        ("Daniel", P),
    ],
    # [111]
    "mail:easy-ham-1:02239": [
        ("zawodny", P),
        ("rssfeeds@spamassassin.taint.org", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Thu, 03 Oct 2002 08:02:43 -0000", DT),
        ("http://jeremy.zawodny.com/blog/archives/000215.html", URL),
        ("2002-10-02T17:02:15-08:00", DT),
    ],
    # [112] the ISP's dial-up number is a telephone number; the sign-off "L." is one initial.
    "mail:easy-ham-2:00136": [
        ("Satelle, StevenX", P),
        ("stevenx.satelle@intel.com", E),
        ("Robert Synnott", P),
        ("r.synnott@oceanfree.net", E),
        ("Liam Bedford", P),
        ("lbedford@netnoteinc.com", E),
        ("ilug@linux.ie", E),
        ("Mon, 29 Jul 2002 06:38:52 +0100", DT),
        ("27 July 2002 11:39", DT),
        ("Friday 26 July 2002 12:37", DT),
        ("Fri, 26 Jul 2002 12:23:24 +0100", DT),
        ("HAMILTON,DAVID", P),
        ("01-2434321", PH),
        ("listmaster@linux.ie", E),
    ],
    # [113]
    "mail:easy-ham-2:01048": [
        ("Damien Morton", P),
        ("damien.morton@acm.org", E),
        ("fork@spamassassin.taint.org", E),
        ("Sat, 17 Aug 2002 02:56:27 -0400", DT),
        ("Saturday, 17 August 2002 02:55", DT),
        ("polrev@hoover.stanford.edu", E),
        ("George Bush", P),
    ],
    # [114]
    "mail:easy-ham-2:00208": [
        ("John P. Looney", P),
        ("valen@tuatha.org", E),
        ("Padraig Brady", P),
        ("padraig.brady@corvil.com", E),
        ("ilug@linux.ie", E),
        ("Thu, 1 Aug 2002 17:43:32 +0100", DT),
        ("Thu, Aug 01, 2002 at 04:03:07PM +0100", DT),
        ("http://www.iol.ie/~padraiga/pics/wild1.jpg", URL),
        ("http://www.iol.ie/~padraiga/pics/wild2.jpg", URL),
        ("Kate", P),
        ("listmaster@linux.ie", E),
    ],
    # [115] spam to a harvested address list.
    "mail:spam-2:00748": [
        ("davidk348@gateway.net", E),
        ("anmartinet@hotmail.com", E),
        ("mtj37@aol.com", E),
        ("kkosal@hotmail.com", E),
        ("jermaines@hotmail.com", E),
        ("looneycats@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("23280622@pager.icq.com", E),
        ("homes@century21firstchoice.com", E),
        ("loic71@hotmail.com", E),
        ("sherineibrahim@worldnet.att.net", E),
        ("Wed, 17 Jul 2002 23:50:01 -1600", DT),
    ],
    # [116] "zqcx" is the sender's display name (a handle).
    "mail:spam-1:00040": [
        ("zqcx", P),
        ("z_q_c_x@yahoo.com", E),
        ("ilug@linux.ie", E),
        ("Fri, 23 Aug 2002 23:10:22 +0800", DT),
        ("unido@chinatop.net", E),
        ("listmaster@linux.ie", E),
    ],
    # [117] "Greetings from Calif!" says where the sender is (LOCATION).
    "mail:spam-2:01036": [
        ("garry", P),
        ("ggs020255@hotmail.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Wed, 24 Jul 2002 19:14:09 -0700", DT),
        ("Calif", LOC),
    ],
    # [118] the spam's contact block is a postal address.
    "mail:spam-2:00695": [
        ("service@thezs.com", E),
        ("solutions@thezs.com", E),
        ("Tue, 11 Jun 2002 05:32:27 -0500", DT),
        ("remove@nouce1.com", E),
        ("6822 22nd Ave. N.", SA),
        ("St. Petersburg", LOC),
        ("FL", LOC),
        ("33710-3918", PC),
    ],
    # [119]
    "mail:spam-2:01193": [
        ("info@clrea.com", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 30 Jul 2002 10:32:18 -0700", DT),
    ],
    # [120] the sender's letterhead gives his city and country.
    "mail:spam-2:00192": [
        ("Ayanda Maredi", P),
        ("abbyman@mweb.co.za", E),
        ("nospam@spamassassin.taint.org", E),
        ("ayandamaredi@imailbox.com", E),
        ("Wed, 3 Apr 2002 21:39:17 -0800", DT),
        ("AYANDA MAREDI", P),
        ("PRETORIA", LOC),
        ("SOUTH AFRICA", LOC),
    ],
    # [121]
    "mail:spam-1:00228": [
        ("LAURENT MPETI KABILA", P),
        ("mpet_ka@mail.com", E),
        ("social@linux.ie", E),
        ("mpeti_ka19@mail.com", E),
        ("Fri, 6 Sep 2002 10:06:57 +0200", DT),
        ("Laurent Mpeti Kabila", P),
        ("LAURENT DESIRE KABILA", P),
        ("Tuesday 16th January, 2001", DT),
        ("August 2000", DT),
        ("Frederic Kibasa Maliba", P),
    ],
    # [122] "felipepunk" is the sender's display name (a handle).
    "mail:spam-2:01063": [
        ("felipepunk", P),
        ("felipepunk@hotmail.com", E),
        ("figmo_7@vail.net", E),
        ("fmcentral@mindspring.com", E),
        ("fotogirl@angelfire.com", E),
        ("francesm@mindspring.com", E),
        ("fpurcell@mho.net", E),
        ("flcesar@hotmail.com", E),
        ("fisherre@worldnet.att.net", E),
        ("flinn@lycos.com", E),
        ("fork@xent.com", E),
        ("Thu, 25 Jul 2002 11:11:21 -0500", DT),
    ],
    # [123] the URL's host holds a person's name (presented as her home page).
    "mail:spam-1:00394": [
        ("uvfsPepperl", P),
        ("yhdiana99b@lycos.com", E),
        ("zzzz@spamassassin.taint.org", E),
        ("Wed, 20 Feb 2002 15:15:14 +0100", DT),
        ("Alex", P),
        ("http://alexandra.hobby.privatseite.to", URL),
        ("Peter", P),
    ],
    # [124]
    "mail:spam-2:00122": [
        ("FLN-Community@FreeLinksNetwork.com", E),
        ("yyyy@netnoteinc.com", E),
        ("Fri,  3 Aug 2001 07:40:20 -0400 (EDT)", DT),
        ("08-03-01", DT),
        ("August 3, 2001", DT),
    ],
    # [125] '"peter"@netnoteinc.com' is an address with a quoted local part.
    "mail:spam-2:00237": [
        ("peter", P),
        ("weou345@msn.com", E),
        ("hellow@netnoteinc.com", E),
        ('"peter"@netnoteinc.com', E),
        ("Sun, 05 May 2002 19:35:30 -1600", DT),
    ],
    # [126] the malformed recipient "Undisclosed Recipients@netnoteinc.com" is labelled as the
    # address it is written as.
    "mail:spam-2:00142": [
        ("l11657@eon.dk", E),
        ("Undisclosed Recipients@netnoteinc.com", E),
        ("Sun, 05 Aug 2001 20:01:18 -0400", DT),
        ("211.152.134.203", IP),
    ],
    # [127]
    "mail:spam-2:00054": [
        ("regnewext@hotmail.com", E),
        ("postmaster@eire.com", E),
        ("Sun, 1 Jul 2001 16:23:37 +0100", DT),
        ("April 16, 2001", DT),
    ],
    # [128]
    "mail:spam-1:00132": [
        ("andijeanehuaa@yahoo.com", E),
        ("Undisclosed.Recipients@webnote.net", E),
        ("Wed, 28 Aug 2002 13:31:07 -0500", DT),
        ("Oprah", P),
        ("affiliateoptout@btamail.net.cn", E),
    ],
    # [129]
    "mail:spam-2:00713": [
        ("nbc@insurancemail.net", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 16 Jul 2002 19:04:20 -0400", DT),
    ],
    # [130]
    "mail:spam-1:00111": [
        ("safety33o@l4.newnamedns.com", E),
        ("lbfbdhvunx@l4.newnamedns.com", E),
        ("Mon, 26 Aug 2002 20:36:20 -0400", DT),
    ],
    # [131]
    "mail:spam-2:01279": [
        ("Sarah", P),
        ("xy2fiww2h463@yahoo.com", E),
        ("mpb@rocketsoftware.com", E),
        ("ellendew@aol.com", E),
        ("embrionic@yahoo.com", E),
        ("aster@utilicorp.com", E),
        ("fork@xent.com", E),
        ("prozak@iguild.com", E),
        ("boyhawk1@aol.com", E),
        ("nickerss@usa.net", E),
        ("jamesbell@aol.com", E),
        ("icp1121@aol.com", E),
        ("Sat, 03 Aug 2002 21:28:40 -1900", DT),
    ],
    # [132]
    "mail:spam-2:00198": [
        ("gintare@netzero.net", E),
        ("yyyy@netnoteinc.com", E),
        ("Sat, 13 Apr 2002 04:01:03 +0000", DT),
    ],
    # [133] HTML in a text/plain part, kept as found; colours are not labelled.
    "mail:spam-2:00105": [
        ("dlpost34@yahoo.com", E),
        ("Undisclosed Recipients@netnoteinc.com", E),
        ("Wed, 01 Aug 2001 01:58:18 -0700", DT),
    ],
    # [134] the spam's call-in number.
    "mail:spam-2:01199": [
        ("nt@insurancemail.net", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Tue, 30 Jul 2002 19:00:55 -0400", DT),
        ("800-626-7980", PH),
    ],
    # [135]
    "mail:spam-1:00490": [
        ("bcsocial1@yahoo.com", E),
        ("social@linux.ie", E),
        ("Tue, 03 Dec 2002 02:55:25 -0500", DT),
        ("January 1st 2002", DT),
        ("listmaster@linux.ie", E),
    ],
    # [136] the letterhead's "IKOYI-LAGOS" is the sender's (claimed) office address.
    "mail:spam-1:00235": [
        ("George Osawa", P),
        ("babalola3@post.com", E),
        ("ilug@linux.ie", E),
        ("Fri, 6 Sep 2002 10:28:15 +0100", DT),
        ("IKOYI-LAGOS", LOC),
    ],
    # [137]
    "mail:spam-2:00074": [
        ("gyrich@hotmail.com", E),
        ("ingodsctry@hotmail.com", E),
        ("Thu, 05 Jul 2001 05:54:09 -0400", DT),
    ],
    # [138]
    "mail:spam-2:00573": [
        ("WEBMASTER@TAIONE.ORG", E),
        ("mmailco@mail.com", E),
        ("Mon, 3 Jun 2002 09:20:34", DT),
    ],
    # [139]
    "mail:spam-2:00472": [
        ("Alice", P),
        ("cweqx@fast.net.au", E),
        ("Undisclosed.Recipients@mandark.labs.netnoteinc.com", E),
        ("Sun, 26 May 2002 16:25:14 -1900", DT),
    ],
    # [140] the recipient's address also stands inside the opt-out URL (labelled there too).
    "mail:spam-1:00003": [
        ("sabrina@mx3.1premio.com", E),
        ("zzzz@spamassassin.taint.org", E),
        ("Thu, 22 Aug 2002 07:36:19 -0600", DT),
    ],
    # [141] addresses inside the confirmation URLs are labelled as addresses.
    "mail:spam-2:00202": [
        ("Offers@allbestcheapstuff.com", E),
        ("yyyy@netnoteinc.com", E),
        ("jm@netnoteinc.com", E),
        ("Fri, 19 Apr 2002 22:58:02 -0400", DT),
        ("June 2002", DT),
    ],
    # [142] a salesman's contact block: his phone numbers with extensions, and the dealership's
    # town in his signature (LOCATION); the upper-case "CLERMONT, FLORIDA" in the sales text says
    # where a company is, not a person (not labelled).
    "mail:spam-2:01294": [
        ("davidm@rollinghillsford.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Mon, 05 Aug 2002 12:00:28 -0400", DT),
        ("AUGUST AND SEPTEMBER 2002", DT),
        ("(352) 394-6161 , ext 1051", PH),
        ("David Mitchell", P),
        ("(352) 394 - 6161 EXT 1015", PH),
        ("Clermont", LOC),
        ("Florida", LOC),
    ],
    # [143] the IP in the URL is a host address.
    "mail:spam-2:00131": [
        ("CreditRepair6@msn.com", E),
        ("Undisclosed Recipients@netnoteinc.com", E),
        ("Sat, 04 Aug 2001 19:12:49 -0700", DT),
        ("211.152.134.203", IP),
        ("NuCredit4@yahoo.com", E),
    ],
    # [144]
    "mail:spam-2:00727": [
        ("leads&sales3642@Flashmail.com", E),
        ("Wed, 17 Jul 2002 17:18:00 -0500", DT),
    ],
    # [145]
    "mail:spam-2:00628": [
        ("fast91gi@xum4.xumx.com", E),
        ("glenydtfqq@xum4.xumx.com", E),
        ("Thu, 6 Jun 2002 16:15:36 -0400", DT),
        ("211.78.96.11", IP),
    ],
    # [146] the Date header's year "0102" is kept as found.
    "mail:spam-2:00996": [
        ("adrian7713j74@chello.at", E),
        ("webmaster@efi.ie", E),
        ("Wed, 24 Jul 0102 21:48:06 +1200", DT),
        ("January 1st 2002", DT),
    ],
    # [147]
    "mail:spam-2:01243": [
        ("News@meatdemons.com", E),
        ("yyyy@netnoteinc.com", E),
        ("Fri, 2 Aug 2002 07:11:58 -0700", DT),
    ],
    # [148]
    "mail:spam-1:00238": [
        ("twg@insiq.us", E),
        ("zzzz@spamassassin.taint.org", E),
        ("Fri, 6 Sep 2002 18:35:32 -0400", DT),
        ("Todd Rooks", P),
        ("todd_rooks@twg-capital.com", E),
        ("866-903-1700 ext. 203", PH),
    ],
    # [149] the access numbers and the example number (written three ways) are phone numbers.
    "mail:spam-1:00236": [
        ("pdibeta@gmx.net", E),
        ("pdiasubscribe@zoom.co.uk", E),
        ("Fri, 6 Sep 2002 11:50:24 +0100", DT),
        ("1530 927 055", PH),
        ("0567 123 124", PH),
        ("1 530 927 055", PH),
        ("567 123 124", PH),
    ],
    # [150] the letterhead's office address (LOCATION); "Barrister", "Alhaji", "General" and
    # "Gen." are titles, not in the spans; "(Nigeria)" in the text is the country in passing.
    "mail:spam-1:00216": [
        ("barristerbassey@arabia.com", E),
        ("confidential_proposal@mail.com", E),
        ("willbass@mail.com", E),
        ("Tue, 3 Sep 2002 21:57:56 -0700", DT),
        ("FALOMO", LOC),
        ("IKOYI", LOC),
        ("LAGOS", LOC),
        ("NIGERIA", LOC),
        ("Williams Bassey", P),
        ("Ishmaila Ibrahim Gwarzo", P),
        ("Gwarzo", P),
        ("Sani Abacha", P),
        ("8th of June 1998", DT),
        ("Olusegun Obasanjo", P),
    ],
    # [151]
    "mail:spam-1:00108": [
        ("safety33o@l7.newnamedns.com", E),
        ("gluzitwseq@l7.newnamedns.com", E),
        ("Mon, 26 Aug 2002 18:20:53 -0400", DT),
    ],
    # [152]
    "mail:spam-2:00229": [
        ("mzsczzokyyyyosobfc@hotmail.com", E),
        ("hotshotm@hotmail.com", E),
        ("fein@ix.netcom.com", E),
        ("duke1@ipa.net", E),
        ("jm@netnoteinc.com", E),
        ("forsam@hotmail.com", E),
        ("tempieclingingsmith3563@swirve.com", E),
        ("Mon, 6 May 2002 00:28:37 +0900 (KST)", DT),
    ],
    # [153]
    "mail:spam-2:00046": [
        ("acerra@hotmail.com", E),
        ("Undisclosed Recipients@netnoteinc.com", E),
        ("sasha4042@mailandnews.com", E),
        ("Fri, 29 Jun 2001 13:41:58 -0700", DT),
    ],
    # [154] Thai text under a wrong charset label, kept as found.
    "mail:spam-1:00072": [
        ("future@businez.com", E),
        ("zzzz@spamassassin.taint.org", E),
        ("Mon, 26 Aug 2002 02:29:35 +0700", DT),
    ],
    # [155] "Dr"/"Mr." are titles; "from Sweden" says where the named man lived.
    "mail:spam-1:00022": [
        ("Bello Ahmed", P),
        ("bell1hmed@yahoo.ca", E),
        ("Thu, 22 Aug 2002 13:31:18 -0700", DT),
        ("Gerrand Schwartz", P),
        ("Sweden", LOC),
        ("December 19th 1999", DT),
    ],
    # [156] the garbled recipient is labelled as the address it is written as.
    "mail:spam-2:01135": [
        ("kirbie", P),
        ("gort44@excite.com", E),
        ("C:`Bulk.AdzMTGhugebreast0010.txt@dogma.slashnull.org", E),
        ("Sat, 27 Jul 2002 06:47:44 -1600", DT),
    ],
    # [157]
    "mail:spam-2:01376": [
        ("Paula Gaiger", P),
        ("Rocheldy@webinfo.fi", E),
        ("ilug@skynet.csn.ul.ie", E),
        ("Wed, 27 Nov 2002 23:30:17 -0500", DT),
    ],
    # [158]
    "mail:spam-2:00093": [
        ("6h5saaa3@msn.com", E),
        ("7keqh5@msn.com", E),
        ("lonniesearchwell341@excite.com", E),
        ("Mon, 30 Jul 2001 01:59:18 +0000 (Eire)", DT),
    ],
    # [159] "LOS ANGELES" is a press-release dateline.
    "mail:spam-2:00620": [
        ("Daniel Johnson", P),
        ("djohnson@allexecs.com", E),
        ("yyyy-cv@spamassassin.taint.org", E),
        ("Thu, 06 Jun 2002 13:18:35 +0800", DT),
        ("April 22, 2002", DT),
    ],
    # [160] the body is one long line, cut at a space; "MR." is a title.
    "mail:spam-1:00157": [
        ("IKE  EJOH", P),
        ("IKE_EJOH@YAHOO.COM", E),
        ("zzzz@spamassassin.taint.org", E),
        ("IKEEJOH@444.NET", E),
        ("Wed, 28 Aug 2002 14:41:06 +0200", DT),
        ("IKE EJOH", P),
        ("June 6  1999", DT),
        ("Barry Kelly", P),
    ],
    # [161]
    "mail:spam-1:00043": [
        ("bill@bluemail.dk", E),
        ("byrt5@hotmail.com", E),
        ("Fri, 23 Aug 2002 14:49:52 -0400 (EDT)", DT),
    ],
    # [162] the garbled display name is one span as written.
    "mail:spam-2:00470": [
        ("pikeJane Wills", P),
        ("ukjanewills@yahoo.com", E),
        ("yyyy@netnoteinc.com", E),
        ("Mon, 27 May 2002 00:11:08 -0400", DT),
        ("removal992002@yahoo.com", E),
    ],
    # [163] "LGPro1" is the sender's display name (a handle).
    "mail:spam-2:01206": [
        ("LGPro1", P),
        ("dylan6831@msn.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Wed, 31 Jul 2002 02:18:46 -0400", DT),
    ],
    # [164] "from Longbeach" says where the (claimed) writer lives.
    "mail:spam-1:00140": [
        ("Kelly Carpelli", P),
        ("mbnxkelly@site-personals.com", E),
        ("social@linux.ie", E),
        ("Wed, 28 Aug 2002 09:17:55 -0400", DT),
        ("Kelly", P),
        ("Longbeach", LOC),
        ("listmaster@linux.ie", E),
    ],
    # [165]
    "mail:spam-2:00368": [
        ("Robert Seviour", P),
        ("robertseviour@totalise.co.uk", E),
        ("yyyy@netnoteinc.com", E),
        ("ukdatacd@totalise.co.uk", E),
        ("Sun, 19 May 2002 10:40:36 +0100", DT),
    ],
    # [166]
    "mail:spam-1:00330": [
        ("news@k1-web.com", E),
        ("ler@lerctr.org", E),
        ("Wed, 11 Sep 2002 20:06:00 +0100", DT),
    ],
    # [167]
    "mail:spam-2:01001": [
        ("roberthj1@juno.com", E),
        ("Earn.money.online@einstein.ssz.com", E),
        ("cypherpunks@einstein.ssz.com", E),
        ("Wed, 24 Jul 0102 05:30:52 -0700", DT),
    ],
    # [168] "a native of South Africa" says where the (claimed) writer is from; Holland is where
    # he is on a course (not labelled).
    "mail:spam-2:01400": [
        ("wilsonkamela400@netscape.net", E),
        ("wilsonkamela500@netscape.net", E),
        ("ilug@linux.ie", E),
        ("Wed, 04 Dec 2002 06:07:07", DT),
        ("WILSON  KAMELA", P),
        ("Wilson Kamela", P),
        ("South Africa", LOC),
        ("Lucio Harper", P),
    ],
    # [169] "DR." is a title.
    "mail:spam-1:00411": [
        ("vivek", P),
        ("responsevivek@indiatimes.com", E),
        ("ilug@linux.ie", E),
        ("Sun, 22 Sep 2002 01:54:09 +0530", DT),
        ("LIM HENG KIAP", P),
    ],
    # [170]
    "mail:spam-1:00137": [
        ("nt@insiq.us", E),
        ("zzzz@spamassassin.taint.org", E),
        ("Tue, 27 Aug 2002 19:04:28 -0400", DT),
        ("800-626-7980", PH),
    ],
    # [171]
    "mail:spam-2:00130": [
        ("CreditRepair1@msn.com", E),
        ("Undisclosed Recipients@netnoteinc.com", E),
        ("Sat, 04 Aug 2001 19:10:15 -0700", DT),
        ("211.152.134.203", IP),
        ("NuCredit4@yahoo.com", E),
    ],
    # [172] the Word metadata names the document's author and its dates; "july 9" in a file
    # path is not labelled (paths).
    "mail:spam-2:00774": [
        ("vanity@zephers.com", E),
        ("fork@spamassassin.taint.org", E),
        ("lookinggood@zephers.com", E),
        ("Fri, 19 Jul 2002 10:03:47 -0500", DT),
        ("Val Curl", P),
        ("2002-07-13T21:21:00Z", DT),
    ],
    # [173] "good4u" is the sender's alias and, as a sub-domain, an affiliate's user name (URL).
    "mail:spam-1:00048": [
        ("good4u", P),
        ("alewss6@hotmail.com", E),
        ("zzzz@spamassassin.taint.org", E),
        ("Fri, 23 Aug 2002 19:27:52", DT),
        ("www.good4u.autodreamteam.com", URL),
    ],
    # [174] 何海群 is a person (先生, "Mr.", follows); qlong2008.xilubbs.com is a user's forum
    # host (URL).
    "mail:spam-2:01125": [
        ("webmaster@163.com", E),
        ("fork@spamassassin.taint.org", E),
        ("Sat, 27 Jul 2002 18:54:38 +0800", DT),
        ("何海群", P),
        ("http://qlong2008.xilubbs.com", URL),
    ],
    # [175]
    "mail:spam-1:00360": [
        ("Anna", P),
        ("manaqxh@abptrade.com.br", E),
        ("0927@sprint.com", E),
        ("letmego@bk.ru", E),
        ("Wed, 18 Sep 2002 07:49:52 +0200 (CEST)", DT),
    ],
    # [176] the insurer's town in its legal notice is not a person's address.
    "mail:spam-2:01230": [
        ("fp@insurancemail.net", E),
        ("yyyy@spamassassin.taint.org", E),
        ("Thu, 1 Aug 2002 18:58:07 -0400", DT),
        ("800-550-2666 x134", PH),
        ("7/22/02", DT),
    ],
    # [177]
    "mail:spam-2:01173": [
        ("Alistair Hill", P),
        ("ali@microfinder.com", E),
        ("yyyy@netnoteinc.com", E),
        ("Tue, 30 Jul 2002 01:33:04 +0100", DT),
        ("Ali", P),
        ("Tris", P),
        ("01225 447227", PH),
        ("01225 471166", PH),
    ],
    # [178] the mangled "121 @FreeBSD.ORG" is not an address as written (not labelled).
    "mail:spam-1:00263": [
        ("joko@rs.128.ne.jp", E),
        ("Sat, 07 Sep 2002 18:24:06 +0900", DT),
        ("majordomo@FreeBSD.org", E),
    ],
    # [179]
    "mail:spam-2:01220": [
        ("webmaster@efi.joensuu.fi", E),
        ("debt_collectors@btamail.net.cn", E),
        ("Thu, 1 Aug 2002 00:13:18", DT),
        ("(212) 213-3000 Ext 1425", PH),
    ],
}


def _bounded(char: str) -> bool:
    """Whether a value starting or ending with ``char`` needs a word boundary there.

    Not for CJK characters: Chinese is written without spaces, so a name stands between
    other word characters (``会员何海群先生``).
    """
    return char.isalnum() and ord(char) < 0x2E80


def _pattern(value: str, etype: str) -> re.Pattern[str]:
    """The regex that finds ``value`` (with its optional «context»); group 1 is the value.

    Addresses, URLs and IPs may not continue into a longer one (``a.b@c.org`` is not found in
    ``xa.b@c.org``); other values need only word boundaries, so ``--Chris`` finds ``Chris``.
    Values at the edge of CJK text need none (:func:`_bounded`).
    """
    if "«" in value and "»" in value:
        before, rest = value.split("«", 1)
        inner, after = rest.split("»", 1)
    else:
        before, inner, after = "", value, ""
    strict = etype in {E, URL, IP}
    left = (r"(?<![\w.+\-])" if strict else r"(?<!\w)") if _bounded(inner[:1]) else ""
    right = (r"(?![\w\-]|\.\w)" if strict else r"(?!\w)") if _bounded(inner[-1:]) else ""
    return re.compile(re.escape(before) + f"{left}({re.escape(inner)}){right}" + re.escape(after))


def spans_for(text: str, labels: list[Label], record_id: str) -> list[list[int | str]]:
    """All occurrences of the labelled values as ``[start, end, type]``, overlaps resolved.

    Raises:
        SystemExit: a type is unknown, a value does not occur in the text, or two occurrences
            overlap without one holding the other.
    """
    candidates: list[tuple[int, int, str]] = []
    for value, etype in labels:
        if etype not in TYPES:
            raise SystemExit(f"{record_id}: unknown type {etype!r}")
        found = [(m.start(1), m.end(1), etype) for m in _pattern(value, etype).finditer(text)]
        if not found:
            raise SystemExit(f"{record_id}: {value!r} ({etype}) not found")
        candidates.extend(found)
    placed: list[tuple[int, int, str]] = []
    for start, end, etype in sorted(set(candidates), key=lambda c: (c[0] - c[1], c[0])):
        clashes = [(s, e) for s, e, _ in placed if start < e and s < end]
        if any(not (s <= start and end <= e) for s, e in clashes):
            raise SystemExit(f"{record_id}: spans overlap at {start} without one holding the other")
        if not clashes:
            placed.append((start, end, etype))
    return [[s, e, t] for s, e, t in sorted(placed)]


def marked(text: str, spans: list[list[int | str]]) -> str:
    """``text`` with each span shown as ``⟦value|TYPE⟧``, for re-reading a record."""
    out, pos = [], 0
    for start, end, etype in spans:
        begin, stop = int(start), int(end)
        out += [text[pos:begin], f"⟦{text[begin:stop]}|{etype}⟧"]
        pos = stop
    return "".join([*out, text[pos:]])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", type=Path, help="pii_real_mail.py's output (no spans)")
    parser.add_argument("--review", metavar="ID", help="print one record with its spans marked")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in args.records.read_text(encoding="utf-8").splitlines()]
    ids = {r["id"] for r in records}
    if args.review:
        rec = next(r for r in records if r["id"] == args.review)
        print(marked(rec["text"], spans_for(rec["text"], LABELS[rec["id"]], rec["id"])))
        return
    if missing := sorted(ids - LABELS.keys()):
        raise SystemExit(f"{len(missing)} records have no labels, first {missing[0]}")
    if extra := sorted(LABELS.keys() - ids):
        raise SystemExit(f"labels for records that were not drawn: {extra}")
    counts: Counter[str] = Counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for rec in records:
            rec["spans"] = spans_for(rec["text"], LABELS[rec["id"]], rec["id"])
            counts.update(str(s[2]) for s in rec["spans"])
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{len(records)} records, {sum(counts.values())} spans")
    for etype, n in sorted(counts.items()):
        print(f"  {etype:<15} {n}")


if __name__ == "__main__":
    main()
