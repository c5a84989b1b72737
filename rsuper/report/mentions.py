"""Lesion mentions inside one sentence: the noun, its noun phrase and its reach.

A sentence like "A 2.1 cm hypodense mass in the pancreatic tail and a 9 mm
cyst in the head" holds two mentions. Each mention owns the words from the
start of its noun phrase ("A 2.1 cm hypodense mass") up to the start of the
next mention's noun phrase; sizes, organ words and sub-segments found there
belong to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lexicon import CLAUSE_BREAK_RE, COUNT_RE, LESION_RE, NEGATION_RE, POST_NEGATION_RE, count_value

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-/×]*|[^\sA-Za-z0-9]")

_DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "no", "any", "another", "its", "some", "each"}
_ANAPHORIC = {"the", "this", "that", "these", "those", "its", "each"}
_MODIFIERS = {
    "small", "smaller", "large", "larger", "largest", "tiny", "new", "additional", "other", "focal", "solid",
    "cystic", "simple", "complex", "dominant", "stable", "known", "index", "target", "round", "rounded", "oval",
    "ovoid", "exophytic", "subcapsular", "peripheral", "central", "irregular", "lobulated", "spiculated",
    "heterogeneous", "homogeneous", "low", "high", "attenuation", "density", "soft", "tissue", "soft-tissue",
    "partially", "mildly", "slightly", "avidly", "arterially", "bilateral", "left", "right", "sub-centimeter",
    "subcentimeter", "sub-centimetre", "subcentimetre", "polypoid", "bulky", "primary", "residual", "recurrent",
    "possible", "probable", "likely", "presumed", "suspected", "x", "×", "by", "mm", "cm", "up", "to",
    "couple", "pair", "few", "several", "multiple", "numerous", "innumerable", "scattered", "many", "various",
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "one", "single", "solitary",
    "well", "ill", "defined", "circumscribed", "head", "neck", "body", "tail", "uncinate", "process", "pole",
    "upper", "lower", "mid", "interpolar", "segment", "lobe", "dome", "hypervascular", "hypovascular", "fat",
    "containing", "enhancing", "nonenhancing", "non-enhancing", "indeterminate", "suspicious", "lytic", "sclerotic",
    "vii", "viii", "vi", "iv", "v", "ii", "iii", "i", "mural", "intraductal", "papillary", "mucinous", "neuroendocrine",
}
_ADJECTIVE = re.compile(
    r"^(?:[a-z][a-z-]*(?:ic|al|ous|ar|ive|ent|ant|ile|oid|ular|ing|ed|ate)|(?:hypo|hyper|iso|low|high)-?[a-z]+)$"
)
_NOT_MODIFIER = {
    "measuring", "including", "involving", "containing", "demonstrating", "showing", "noted", "seen", "identified",
    "visualized", "compared", "increased", "decreased", "measured", "located", "centered", "situated", "arising",
    "abutting", "causing", "extending", "interval", "represented", "consistent", "unchanged", "redemonstrated",
    "enlarged", "demonstrated", "evaluated", "characterized", "present", "evident", "apparent", "normal",
    "previously", "prior", "recent", "again", "above", "described", "mentioned", "following",
}
#: Words right before a noun phrase that make it a description of the previous
#: mention ("a mass, likely adenocarcinoma") rather than a new lesion.
_APPOSITION = re.compile(
    r"(?:\bfor|\bof|\bwith|\brepresent\w*|\blikely|\bprobabl\w*|\bpossibl\w*|\bsuggest\w*|\bconsistent|\bcompatible|"
    r"\bconcerning|\bsuspicious|\bworrisome|\bfavou?r\w*|\breflect\w*|\bas|\bdue\s+to|\brelated\s+to|\bfrom|"
    r"\bcharacteristic|\btypical|\bdiagnostic|\bin\s+keeping\s+with|\bthought\s+to\s+be|\bpresumably|"
    r"\bpresumed|\bmost\s+likely|\bcould\s+be|\bmay\s+be|\bmight\s+be|[,(])(?:\s+(?:a|an|the)\b)?(?:\s*[\w-]+){0,3}\s*$",
    re.IGNORECASE,
)


@dataclass
class Mention:
    """One lesion noun with its noun phrase, in sentence-local offsets.

    Attributes:
        np_start: start of the noun phrase (determiner/count/size/adjectives).
        noun_start, noun_end: span of the lesion noun.
        region_end: end of the words that belong to this mention.
        plural: whether the noun is plural.
        count, count_is_lower_bound: from a count word in the noun phrase.
        determiner: the determiner opening the noun phrase, lower-case, or "".
        negated: a negation reaches the noun ("no pancreatic mass").
        resolved: negated because it is gone ("... has resolved") - not a normal-organ statement.
        descriptive: it describes the previous mention ("…, likely a cyst").
    """

    np_start: int
    noun_start: int
    noun_end: int
    region_end: int
    plural: bool
    noun: str
    count: int | None = None
    count_is_lower_bound: bool = False
    determiner: str = ""
    negated: bool = False
    resolved: bool = False
    descriptive: bool = False


def _np_start(s: str, noun_start: int, protected: list[tuple[int, int]]) -> tuple[int, str]:
    """Walk left from a noun over modifiers; return (phrase start, determiner)."""
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(s, 0, noun_start)]
    start = noun_start
    determiner = ""
    for a, b, tok in reversed(tokens):
        low = tok.lower()
        inside = any(pa <= a and b <= pb for pa, pb in protected)
        if low in _DETERMINERS:
            start, determiner = a, low
            break
        if low == "of" and start < noun_start:
            nxt = s[b:start].strip().lower()
            prev = s[max(0, a - 12):a].lower()
            if re.search(r"(couple|pair|number|total)\s*$", prev) or nxt in ("",):
                start = a
                continue
            break
        if (
            inside
            or low in _MODIFIERS
            or re.fullmatch(r"\d+(?:\.\d+)?(?:-?(?:mm|cm))?", low)
            or (_ADJECTIVE.match(low) and low not in _NOT_MODIFIER)
            or low == "-"
        ):
            start = a
            continue
        break
    return start, determiner


def find_mentions(s: str, protected: list[tuple[int, int]]) -> list[Mention]:
    """Lesion mentions of sentence ``s``.

    ``protected`` spans (sizes, organ and sub-segment terms) count as
    modifiers when walking left over a noun phrase.
    """
    mentions: list[Mention] = []
    for m in LESION_RE.finditer(s):
        if re.match(r"\s+effect", s[m.end():]):
            continue  # "mass effect"
        noun = m.group()
        plural = m.group("plural") is not None
        if noun.lower() == "focus" and not re.search(r"(hypo|hyper|low|high|enhanc)\w*\W+$", s[:m.start()], re.I):
            continue
        np_start, det = _np_start(s, m.start(), protected)
        if re.search(r"\b(?:nodal|lymph\w*|nodes?)\b", s[np_start:m.start()], re.I):
            continue  # "a conglomerate nodal mass" is a lymph-node finding, not an organ tumour
        mentions.append(Mention(np_start, m.start(), m.end(), len(s), plural, noun, determiner=det))
    # A noun directly followed by another noun of the list ("metastatic deposit") is already one match;
    # "cystic lesion" etc. are fine because "cystic" is not a noun of the list.
    for i, men in enumerate(mentions):
        nxt = mentions[i + 1].np_start if i + 1 < len(mentions) else len(s)
        brk = CLAUSE_BREAK_RE.search(s, men.noun_end, nxt)
        men.region_end = brk.start() if brk else nxt
        _set_count(s, men, protected)
        men.negated = _negated(s, men, mentions[:i])
        if not men.negated and i > 0 and mentions[i - 1].negated:
            # "no pulmonary nodules or masses": the negation covers coordinated nouns
            between = s[mentions[i - 1].noun_end:men.np_start]
            men.negated = bool(re.fullmatch(r"\s*(?:,|or|and|nor|/)\s*(?:[\w-]+\s*){0,2}", between))
        prev_positive = any(not p.negated for p in mentions[:i])
        if prev_positive and (i > 0 and men.np_start <= mentions[i - 1].region_end + 40):
            before = s[max(0, men.np_start - 40):men.np_start]
            if _APPOSITION.search(before):
                men.descriptive = True
    return mentions


def _set_count(s: str, men: Mention, protected: list[tuple[int, int]]) -> None:
    best: tuple[int, bool] | None = None
    for m in COUNT_RE.finditer(s, men.np_start, men.noun_start):
        if any(pa <= m.start() < pb for pa, pb in protected if s[pa:pb].strip().lower() != m.group().lower()):
            continue
        value = count_value(m.group())
        word = m.group().lower()
        if word in ("a", "an", "another", "additional") and best is not None:
            continue
        if best is None or word not in ("a", "an"):
            best = value
    if best is None:
        best = (2, True) if men.plural else (1, False)
    elif men.plural and best == (1, False):
        best = (2, True)  # "a few", "additional lesions"
    men.count, men.count_is_lower_bound = best


def _negated(s: str, men: Mention, previous: list[Mention]) -> bool:
    left_limit = previous[-1].noun_end if previous else 0
    window = s[left_limit:men.noun_start]
    brk = list(CLAUSE_BREAK_RE.finditer(window))
    if brk:
        window = window[brk[-1].end():]
    # the cue must stand close before the noun phrase ("no evidence of a focal pancreatic mass")
    reach = len(window) - (men.noun_start - men.np_start) - 40
    if any(m.end() >= reach for m in NEGATION_RE.finditer(window)):
        return True
    if men.determiner == "no":
        return True
    after = s[men.noun_end:men.region_end]
    men.resolved = bool(POST_NEGATION_RE.search(after))
    return men.resolved


def is_anaphoric(men: Mention) -> bool:
    """Whether the mention refers back ("the lesion", "this mass")."""
    return men.determiner in _ANAPHORIC and men.count in (None, 1) and not men.count_is_lower_bound
