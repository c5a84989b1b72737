"""Word lists of the rules extractor: organs, sub-segments, lesion nouns, counts, cues.

All patterns are case-insensitive regular expressions matched on whole words.
Order matters where one term contains another (``gall bladder`` before
``bladder``, ``hepatic flexure`` before ``hepatic``): :func:`find_organs`
takes the longest match at each place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# (pattern, organ). Organ None: a structure that is not one of our organs
# (vessels, ducts, flexures named after an organ) - it blocks the shorter match.
_ORGAN_TERMS: list[tuple[str, str | None]] = [
    (r"hepatic flexure", "colon"),
    (r"splenic flexure", "colon"),
    (r"(?:hepatic|splenic|renal|portal|mesenteric|gastric|pancreatic|adrenal)"
     r"\s+(?:vein|veins|artery|arteries|vessels?)", None),
    (r"(?:common\s+)?(?:hepatic|bile|cystic|pancreatic)\s+ducts?", None),
    (r"(?:gastroesophageal|ge|gastro-esophageal)\s+junction", "esophagus"),
    (r"gall\s*bladder", "gallbladder"),
    (r"(?:urinary\s+)?bladder|vesical", "bladder"),
    (r"liver|hepatic|hepatocellular|hepatobiliary", "liver"),
    (r"pancreas|pancreatic|pancreatico\w*", "pancreas"),
    (r"kidneys?|renal|nephric", "kidney"),
    (r"adrenals?(?:\s+glands?)?|suprarenal", "adrenal"),
    (r"spleen|splenic", "spleen"),
    (r"stomach|gastric", "stomach"),
    (r"duodenum|duodenal", "duodenum"),
    (r"small\s+(?:bowel|intestine)|jejunum|jejunal|ileum|ileal", "small_bowel"),
    (r"bowel", "bowel"),
    (r"colon|colonic|cecum|cecal|caecum|sigmoid|rectum|rectal|rectosigmoid", "colon"),
    (r"esophagus|esophageal|oesophagus|oesophageal", "esophagus"),
    (r"prostate|prostatic", "prostate"),
    (r"uterus|uterine|endometri\w*|myometri\w*", "uterus"),
    (r"ovary|ovaries|ovarian|adnexa|adnexal", "ovary"),
    (r"(?:right|left)\s+(?:upper|middle|lower)\s+lobes?|lingula|lingular", "lung"),
    (r"lungs?(?:\s+bases?)?|pulmonary|lung\s+bases?", "lung"),
    (r"breasts?", "breast"),
    (r"osseous|bones?|vertebral\s+body|vertebra|lytic|sclerotic", "bone"),
]
ORGAN_RE = re.compile(
    "|".join(f"(?P<g{i}>\\b(?:{p})\\b)" for i, (p, _) in enumerate(_ORGAN_TERMS)),
    re.IGNORECASE,
)

#: Group words that stand for several organs of the vocabulary.
ORGAN_GROUPS: dict[str, tuple[str, ...]] = {"bowel": ("small_bowel", "colon")}


@dataclass
class Term:
    """A matched term: span, canonical value and the matched text."""

    start: int
    end: int
    value: str
    text: str


def find_organs(text: str) -> list[Term]:
    """Organ terms in ``text`` (value: vocabulary name, unsided for pairs)."""
    out: list[Term] = []
    for m in ORGAN_RE.finditer(text):
        idx = int(m.lastgroup[1:])
        organ = _ORGAN_TERMS[idx][1]
        if organ is not None:
            out.append(Term(m.start(), m.end(), organ, m.group()))
    return out


SIDE_RE = re.compile(r"\b(left|right|bilateral(?:ly)?|both)\b", re.IGNORECASE)

_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
_SEG_NUM = r"(?:[1-8]|viii|vii|vi|iv|v|iii|ii|i)[ab]?"
LIVER_SEGMENT_RE = re.compile(
    rf"\b(?:couinaud\s+)?segments?\s+(?P<nums>{_SEG_NUM}(?:\s*(?:/|,|and|or|-)\s*(?:segment\s+)?{_SEG_NUM})*)\b",
    re.IGNORECASE,
)
CAUDATE_RE = re.compile(r"\bcaudate(?:\s+lobe)?\b", re.IGNORECASE)
PANCREAS_PART_RE = re.compile(
    r"\b(head|uncinate(?:\s+process)?|neck|body|tail)\b", re.IGNORECASE
)
KIDNEY_PART_RE = re.compile(
    r"\b(upper|superior|lower|inferior|mid|middle|interpolar|mid-?pole)(?:\s+|-)?(pole|portion|kidney|third)?\b",
    re.IGNORECASE,
)


def _segment_number(token: str) -> int | None:
    token = token.lower().rstrip("ab")
    if token.isdigit():
        return int(token)
    return _ROMAN.get(token)


def liver_segments(text: str) -> list[Term]:
    """Couinaud segment references (value like ``segment_7`` or ``segment_5/segment_6``)."""
    out: list[Term] = []
    for m in LIVER_SEGMENT_RE.finditer(text):
        nums: list[int] = []
        for tok in re.findall(_SEG_NUM, m.group("nums"), re.IGNORECASE):
            n = _segment_number(tok)
            if n is not None and n not in nums:
                nums.append(n)
        if nums:
            out.append(Term(m.start(), m.end(), "/".join(f"segment_{n}" for n in nums), m.group()))
    for m in CAUDATE_RE.finditer(text):
        out.append(Term(m.start(), m.end(), "segment_1", m.group()))
    return sorted(out, key=lambda t: t.start)


def pancreas_parts(text: str) -> list[Term]:
    """Pancreas head / uncinate / neck / body / tail references."""
    out = []
    for m in PANCREAS_PART_RE.finditer(text):
        out.append(Term(m.start(), m.end(), m.group(1).lower().split()[0], m.group()))
    return out


def kidney_parts(text: str) -> list[Term]:
    """Kidney pole references (``upper_pole``, ``mid_pole``, ``lower_pole``)."""
    out = []
    for m in KIDNEY_PART_RE.finditer(text):
        word = m.group(1).lower()
        tail = (m.group(2) or "").lower()
        if word in ("upper", "superior", "lower", "inferior", "mid", "middle") and tail != "pole":
            continue
        if word in ("upper", "superior"):
            value = "upper_pole"
        elif word in ("lower", "inferior"):
            value = "lower_pole"
        else:
            value = "mid_pole"
        out.append(Term(m.start(), m.end(), value, m.group()))
    return out


# Lesion nouns. Singular/plural are told apart by the "plural" group.
LESION_RE = re.compile(
    r"\b(?:(?P<plural>lesions|masses|nodules|cysts|tumou?rs|metastases|metastatic\s+deposits|hypodensities|"
    r"hyperdensities|hypoattenuating\s+foci|hypodense\s+foci|foci|neoplasms|implants|hemangiomas|haemangiomas|"
    r"adenomas|angiomyolipomas|carcinomas|nodularities|opacities|observations)|"
    r"(?P<singular>lesion|mass|nodule|cyst|tumou?r|metastasis|metastatic\s+deposit|hypodensity|hyperdensity|"
    r"focus|neoplasm|implant|hemangioma|haemangioma|adenoma|angiomyolipoma|carcinoma|adenocarcinoma|"
    r"cholangiocarcinoma|hcc|ipmn|pnet|neuroendocrine\s+tumou?r|malignancy|cancer|lymphoma|observation))\b",
    re.IGNORECASE,
)


_COUNT_WORDS: dict[str, tuple[int, bool]] = {
    "a": (1, False), "an": (1, False), "one": (1, False), "single": (1, False), "solitary": (1, False),
    "another": (1, False), "additional": (1, False),
    "two": (2, False), "three": (3, False), "four": (4, False), "five": (5, False), "six": (6, False),
    "seven": (7, False), "eight": (8, False), "nine": (9, False), "ten": (10, False),
    "eleven": (11, False), "twelve": (12, False), "couple": (2, False), "pair": (2, False),
    "both": (2, False), "few": (2, True), "several": (2, True), "multiple": (2, True), "numerous": (2, True),
    "innumerable": (2, True), "countless": (2, True), "many": (2, True), "scattered": (2, True),
    "various": (2, True), "multifocal": (2, True), "diffuse": (2, True), "myriad": (2, True),
}
COUNT_RE = re.compile(
    r"\b(" + "|".join(sorted(_COUNT_WORDS, key=len, reverse=True))
    + r"|\d{1,2})\b(?!\s*(?:\.\d|mm|cm|-?\s*mm|-?\s*cm))",
    re.IGNORECASE,
)


def count_value(word: str) -> tuple[int, bool]:
    """``(count, is_lower_bound)`` of a count word or digit string."""
    w = word.lower()
    if w.isdigit():
        return int(w), False
    return _COUNT_WORDS[w]


#: Negation cues before a lesion noun, in the same clause.
NEGATION_RE = re.compile(
    r"\b(?:no|without|negative\s+for|free\s+of|absence\s+of|not\s+(?:seen|identified|visualized|demonstrated)|"
    r"none|rule\s+out|ruled\s+out|resolution\s+of|resolved)\b",
    re.IGNORECASE,
)
#: Negation after the noun ("... has resolved", "is no longer seen").
POST_NEGATION_RE = re.compile(
    r"\b(?:has\s+resolved|have\s+resolved|resolved|no\s+longer\s+(?:seen|visible|identified|present|visualized|demonstrated|evident|apparent)|"
    r"(?:is|are)\s+not\s+(?:seen|identified|visualized)|(?:was|were)\s+(?:resected|removed))\b",
    re.IGNORECASE,
)
#: Statements that an organ is normal / free of lesions.
NORMAL_RE = re.compile(
    r"\b(?:normal|unremarkable|within\s+normal\s+limits|clear|negative|no\s+abnormalit\w+)\b",
    re.IGNORECASE,
)
#: Words that end the reach of a negation or a normal statement.
CLAUSE_BREAK_RE = re.compile(
    r";|\bbut\b|\bhowever\b|\balthough\b|\bexcept\b|\bwhereas\b|\bapart\s+from\b|\bother\s+than\b|"
    r"\bwith\s+the\s+exception\s+of\b|\bwhile\b|,\s*(?:and\s+)?(?:there\s+is|there\s+are|with)\b",
    re.IGNORECASE,
)
#: ... or one of these right after it.
PRIOR_AFTER_RE = re.compile(
    r"^\s*,?\s*(?:\(?\s*)?(?:on|in|at)\s+(?:the\s+)?(?:prior|previous|preceding|last|outside|earlier|\d{1,2}/\d{1,2}/\d{2,4}|"
    r"(?:19|20)\d\d|\w+\s+(?:19|20)\d\d)",
    re.IGNORECASE,
)

ATTENUATION_PATTERNS: list[tuple[str, str]] = [
    (r"heterogene\w*|mixed|complex\s+cystic|solid\s+and\s+cystic|cystic\s+and\s+solid|partially\s+cystic", "mixed"),
    (r"cysts?|cystic|fluid[- ](?:attenuation|density)|water\s+(?:attenuation|density)", "cystic"),
    (r"hypo\w*|low[- ](?:attenuation|density)|low[- ]attenuating|decreased\s+attenuation", "hypo"),
    (r"hyper\w*|high[- ](?:attenuation|density)|(?:avidly\s+|arterially\s+)?enhancing|calcified", "hyper"),
    (r"iso\w*", "iso"),
]
MALIGNANCY_PATTERNS: list[tuple[str, str]] = [
    (r"suspicious|concerning|worrisome|suggestive\s+of\s+(?:malignancy|metasta\w+|neoplasm)|cannot\s+exclude|"
     r"can\s+not\s+be\s+excluded|cannot\s+be\s+excluded|possible\s+(?:malignancy|metasta\w+)", "suspicious"),
    (r"indeterminate|too\s+small\s+to\s+characteri[sz]e|nonspecific|non-specific|uncertain", "indeterminate"),
    (r"metasta\w+|carcinoma|adenocarcinoma|malignan\w+|cancer|hcc|lymphoma|sarcoma|"
     r"consistent\s+with\s+(?:neoplasm|tumou?r)|neoplastic|pdac", "malignant"),
    (r"benign|simple\s+cysts?|cysts?|hemangiomas?|haemangiomas?|angiomyolipomas?|adenomas?|lipomas?|"
     r"focal\s+nodular\s+hyperplasia|fnh|bosniak\s+(?:i|ii|1|2)\b", "benign"),
]


def first_label(patterns: list[tuple[str, str]], text: str) -> str | None:
    """Value of the first pattern (in list order) that matches anywhere in ``text``."""
    for pattern, value in patterns:
        if re.search(rf"\b(?:{pattern})\b", text, re.IGNORECASE):
            return value
    return None
