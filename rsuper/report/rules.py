"""The offline, deterministic rule-based extractor (backend ``rules``).

Per sentence (see :mod:`rsuper.report.text`): find lesion mentions
(:mod:`rsuper.report.mentions`), give each the sizes, organ, side,
sub-segment, count, attenuation and malignancy found in its reach, drop
negated mentions and prior-study sizes, and collect the organs the report
calls normal. Tumours repeated in the IMPRESSION are merged with the ones
of the FINDINGS. No model, no GPU: about a thousand reports per second.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from . import lexicon as lx
from .base import ExtractionError, Extractor, ReportItem
from .mentions import Mention, find_mentions, is_anaphoric
from .schema import PAIRED_ORGANS, SUBSEGMENTS, Evidence, ExtractorInfo, ReportFacts, Tumour, expand_sides
from .sizes import SizeMention, find_sizes
from .text import Sentence, split_sentences

VERSION = "1.0"

_PRIOR_WORDS = re.compile(
    r"\b(?:previously|previous|prior|formerly|from|was|were|then|earlier|baseline|before|compared|comparison|"
    r"versus|vs|had)\b",
    re.IGNORECASE,
)
_CURRENT_WORDS = re.compile(r"\b(?:now|currently|today|presently|current)\b", re.IGNORECASE)
_NOT_LOCATION = re.compile(
    r"\b(?:abut\w*|invad\w*|invasion|encas\w*|adjacent|near|displac\w*|compress\w*|obstruct\w*|into|contact\w*|"
    r"toward\w*|involv\w+\s+the\s+adjacent|narrow\w*|occlu\w*|surround\w*|inferior\s+to|superior\s+to|"
    r"anterior\s+to|posterior\s+to|medial\s+to|lateral\s+to|upstream|downstream)\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
_LARGEST = re.compile(r"\b(?:the\s+)?largest\b|\bup\s+to\b|\bthe\s+biggest\b|\bthe\s+dominant\b", re.IGNORECASE)


@dataclass
class _Record:
    """A tumour being built, with where it came from."""

    tumour: Tumour
    section: str
    block: int


class RulesExtractor(Extractor):
    """Rule-based extraction of tumour facts (offline, deterministic).

    Args:
        workers: processes used by :meth:`extract_many` (1 = in-process).
    """

    name = "rules"

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))
        self._pool: multiprocessing.pool.Pool | None = None

    @property
    def info(self) -> ExtractorInfo:
        return ExtractorInfo(name="rules", version=VERSION)

    def extract(self, case_id: str, text: str) -> ReportFacts:
        """Facts of one report; raises :class:`ExtractionError` for empty text."""
        if not isinstance(text, str) or not text.strip():
            raise ExtractionError("empty report text")
        state = _ReportState(text)
        for sent in split_sentences(text):
            if sent.section != "skip":
                state.add_sentence(sent)
        return state.facts(case_id, self.info)

    def extract_many(
        self, items: Iterable[ReportItem]
    ) -> Iterator[tuple[ReportItem, ReportFacts | Exception]]:
        """As :meth:`Extractor.extract_many`, spread over ``workers`` processes."""
        if self.workers == 1:
            yield from super().extract_many(items)
            return
        items = list(items)
        if self._pool is None:
            self._pool = multiprocessing.Pool(self.workers)
        jobs = [(i.case_id, i.text) for i in items]
        yield from zip(items, self._pool.imap(_extract_or_error, jobs, chunksize=8))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


def _extract_or_error(job: tuple[str, str]) -> ReportFacts | Exception:
    try:
        return RulesExtractor().extract(*job)
    except Exception as exc:  # noqa: BLE001 - returned to the batch, which records it
        return exc


class _ReportState:
    """Everything collected while reading one report."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.records: list[_Record] = []
        self.normal: list[str] = []
        self.warnings: list[str] = []
        self.context_organ: str | None = None
        self.block = 0
        self._last_header: tuple[str, str] | None = None

    # ---------------------------------------------------------------- sentences
    def add_sentence(self, sent: Sentence) -> None:
        key = (sent.section, sent.header)
        if key != self._last_header:
            self.block += 1
            self.context_organ = None
            self._last_header = key
        s = sent.text
        sizes = [z for z in find_sizes(s) if not self._is_prior(s, z)]
        all_sizes = find_sizes(s)
        organs = lx.find_organs(s)
        subterms = lx.liver_segments(s) + lx.pancreas_parts(s) + lx.kidney_parts(s)
        protected = [(z.start, z.end) for z in all_sizes] + [(o.start, o.end) for o in organs]
        protected += [(t.start, t.end) for t in subterms]
        mentions = find_mentions(s, protected)
        header_organs = self._resolve_header(sent.header)

        positive = [m for m in mentions if not m.negated and not m.descriptive]
        first_new = len(self.records)
        for i, men in enumerate(mentions):
            if men.negated or men.descriptive:
                continue
            lo = 0 if men is positive[0] else men.np_start
            self._add_mention(sent, men, lo, sizes, organs, header_organs, mentions, i)
        self._absorb_members(first_new)
        if not positive:
            self._apply_largest(sent, sizes)
        self._normal_statements(s, mentions, organs, header_organs)
        if organs:
            self.context_organ = organs[0].value
        elif header_organs and len(header_organs) == 1:
            self.context_organ = header_organs[0]

    def _resolve_header(self, header: str) -> list[str]:
        if not header:
            return []
        organs = lx.find_organs(header)
        out: list[str] = []
        for o in organs:
            out.extend(self._sided(header, o, plural_both=True))
        return out

    @staticmethod
    def _is_prior(s: str, z: SizeMention) -> bool:
        """Whether a size belongs to a prior study ("previously 8 mm")."""
        before = s[max(0, z.start - 45):z.start]
        cut = max(before.rfind(c) for c in ",;()[:")
        near = before[cut + 1:] if cut >= 0 else before
        words = near.split()
        near = " ".join(words[-4:])
        cues = list(_PRIOR_WORDS.finditer(near))
        now = list(_CURRENT_WORDS.finditer(near))
        if cues and not (now and now[-1].start() > cues[-1].start()):
            return True
        if z.kind == "change":
            return False
        return bool(lx.PRIOR_AFTER_RE.match(s[z.end:z.end + 40]))

    # ----------------------------------------------------------------- mentions
    def _add_mention(
        self,
        sent: Sentence,
        men: Mention,
        lo: int,
        sizes: list[SizeMention],
        organs: list[lx.Term],
        header_organs: list[str],
        mentions: list[Mention],
        index: int,
    ) -> None:
        s = sent.text
        hi = men.region_end
        np_text = s[men.np_start:men.noun_end]
        reach = s[lo:hi]
        mine = [z for z in sizes if lo <= z.start < hi]
        organ_term = self._organ_for(s, men, lo, hi, organs)
        organ = organ_term.value if organ_term else None
        sub_hint = self._subsegment_organ(s[lo:hi])
        if organ is None:
            organ = sub_hint or self._sentence_organ(organs, header_organs)
        if organ is None:
            organ = self.context_organ
        if organ is None:
            self.warnings.append(f"lesion without organ ignored: {s[men.np_start:men.noun_end]!r}")
            return
        sides = self._sides_for(s, organ, organ_term, lo, hi, header_organs)
        subsegment = self._subsegment(reach, sides[0])
        attenuation = lx.first_label(lx.ATTENUATION_PATTERNS, np_text) or lx.first_label(
            lx.ATTENUATION_PATTERNS, reach
        ) or "unknown"
        nxt = next((m for m in mentions[index + 1:] if not m.descriptive), None)
        follow = s[men.noun_end:nxt.np_start] if nxt is not None else s[men.noun_end:]
        malignancy = lx.first_label(lx.MALIGNANCY_PATTERNS, s[lo:men.noun_end] + " " + follow) or "unknown"
        evidence = Evidence(s, sent.start, sent.end)

        size_lists: list[list[float]] = [d for z in mine for d in z.sizes_mm]
        anaphoric = is_anaphoric(men)
        if anaphoric and self._fill_previous(organ, size_lists, subsegment, malignancy, evidence, sent):
            return
        count, lower = men.count or 1, men.count_is_lower_bound
        group_size = bool(_LARGEST.search(reach))
        if len(size_lists) > 1 and not lower and count == len(size_lists) and not group_size:
            per = size_lists  # "two cysts measuring 8 and 5 mm"
            counts = [1] * len(per)
        elif size_lists:
            largest = max(size_lists, key=lambda d: (d[0], len(d)))
            if len(size_lists) > 1 and count == 1 and not lower:
                self.warnings.append(f"several sizes for one lesion, largest kept: {s!r}")
            per, counts = [largest], [count]
        else:
            per, counts = [[]], [count]
        for side in sides:
            for dims, n in zip(per, counts):
                t = Tumour(
                    organ=side,
                    subsegment=subsegment if side in SUBSEGMENTS or side == "liver" else None,
                    diameters_mm=sorted(dims, reverse=True)[:3],
                    count=n,
                    count_is_lower_bound=lower and n > 1,
                    attenuation=attenuation,
                    malignancy=malignancy,
                    evidence=evidence,
                )
                self.records.append(_Record(t, sent.section, self.block))

    def _absorb_members(self, first: int) -> None:
        """"Two lesions: a 2 cm lesion in segment 7 and a 9 mm one in segment 3" -> the two members only."""
        new = self.records[first:]
        for k, rec in enumerate(new):
            t = rec.tumour
            if t.count < 2 or t.count_is_lower_bound or t.diameters_mm:
                continue
            members = [r for r in new[k + 1:] if r.tumour.organ == t.organ and r.tumour.count == 1]
            if members:
                t.count -= min(len(members), t.count)
                if t.count == 0:
                    self.records.remove(rec)

    def _fill_previous(
        self,
        organ: str,
        size_lists: list[list[float]],
        subsegment: str | None,
        malignancy: str,
        evidence: Evidence,
        sent: Sentence,
    ) -> bool:
        """Attach an anaphoric mention ("the lesion measures 2 cm") to the record it refers to."""
        for rec in reversed(self.records):
            t = rec.tumour
            if rec.section != sent.section or rec.block != self.block:
                break
            if t.organ != organ and organ not in PAIRED_ORGANS and t.organ not in PAIRED_ORGANS.get(organ, ()):
                continue
            if size_lists:
                largest = max(size_lists, key=lambda d: d[0])
                if t.diameters_mm and t.diameters_mm[0] != largest[0]:
                    continue
                if t.count > 1 and not t.count_is_lower_bound and not t.diameters_mm:
                    # "Two metastases. The segment 7 lesion measures 3.4 cm." -> one member of the pair
                    t.count -= 1
                    member = Tumour(t.organ, subsegment if t.organ in SUBSEGMENTS else None,
                                    sorted(largest, reverse=True)[:3], 1, False, t.attenuation,
                                    malignancy if malignancy != "unknown" else t.malignancy, evidence)
                    self.records.append(_Record(member, sent.section, self.block))
                    return True
                if not t.diameters_mm:
                    t.diameters_mm = sorted(largest, reverse=True)[:3]
                    t.evidence = evidence
            if t.subsegment is None and subsegment and t.organ in SUBSEGMENTS:
                t.subsegment = subsegment
            if t.malignancy == "unknown":
                t.malignancy = malignancy
            return True
        return False

    def _apply_largest(self, sent: Sentence, sizes: list[SizeMention]) -> None:
        """"Multiple cysts. The largest measures 12 mm." -> size of the group."""
        s = sent.text
        if not sizes or not _LARGEST.search(s):
            return
        for rec in reversed(self.records):
            if rec.block != self.block or rec.section != sent.section:
                return
            t = rec.tumour
            if t.count > 1 or t.count_is_lower_bound:
                if not t.diameters_mm:
                    t.diameters_mm = sorted(max((d for z in sizes for d in z.sizes_mm), key=lambda d: d[0]),
                                            reverse=True)[:3]
                    sub = self._subsegment(s, t.organ)
                    if t.subsegment is None and sub:
                        t.subsegment = sub
                return

    # ------------------------------------------------------------ organ / side
    @staticmethod
    def _organ_for(s: str, men: Mention, lo: int, hi: int, organs: list[lx.Term]) -> lx.Term | None:
        pre = [o for o in organs if men.np_start <= o.start < men.noun_start]
        if pre:
            return pre[-1]
        for o in organs:
            if men.noun_end <= o.start < hi and not _NOT_LOCATION.search(s[max(men.noun_end, o.start - 40):o.start]):
                return o
        before = [o for o in organs if lo <= o.start < men.np_start]
        if before:
            return before[-1]
        return None

    @staticmethod
    def _sentence_organ(organs: list[lx.Term], header_organs: list[str]) -> str | None:
        if header_organs:
            return header_organs[0] if len(header_organs) == 1 else _common_unsided(header_organs)
        return organs[0].value if organs else None

    @staticmethod
    def _subsegment_organ(reach: str) -> str | None:
        if lx.liver_segments(reach):
            return "liver"
        if re.search(r"\buncinate\b", reach, re.I):
            return "pancreas"
        return None

    def _sides_for(
        self, s: str, organ: str, term: lx.Term | None, lo: int, hi: int, header_organs: list[str]
    ) -> list[str]:
        if organ not in PAIRED_ORGANS:
            if organ in lx.ORGAN_GROUPS:
                return [lx.ORGAN_GROUPS[organ][-1]]
            return [organ]
        if term is not None:
            sided = self._sided(s, term, plural_both=False, lo=lo, hi=hi)
            if sided != [organ]:
                return sided
        side = self._side_names(organ, lx.SIDE_RE.findall(s[lo:hi]))
        if side:
            return side
        sided_headers = [h for h in header_organs if h in PAIRED_ORGANS[organ]]
        return sided_headers if len(sided_headers) == 1 else [organ]

    def _sided(
        self, s: str, term: lx.Term, plural_both: bool, lo: int = 0, hi: int | None = None
    ) -> list[str]:
        """Sided organ names for an organ term, reading nearby side words."""
        organ = term.value
        if organ in lx.ORGAN_GROUPS:
            return list(lx.ORGAN_GROUPS[organ])
        if organ not in PAIRED_ORGANS:
            return [organ]
        if term.text.lower().startswith("lingula"):
            return [PAIRED_ORGANS[organ][0]]
        own = lx.SIDE_RE.findall(term.text)
        if own:
            return self._side_names(organ, own)
        before = s[max(lo, term.start - 25):term.start]
        words = lx.SIDE_RE.findall(before.split(",")[-1])
        if words:
            return self._side_names(organ, words[-1:])
        after = s[term.end:term.end + 25 if hi is None else min(hi, term.end + 25)]
        m = re.match(r"^\s*(?:,\s*)?(?:on\s+the\s+|,\s*)?(left|right)\b", after, re.I)
        if m:
            return self._side_names(organ, [m.group(1)])
        plural = term.text.lower().endswith("s") or term.text.lower() in ("adrenals",)
        return list(PAIRED_ORGANS[organ]) if plural_both or plural else [organ]

    @staticmethod
    def _side_names(organ: str, words: list[str]) -> list[str]:
        left, right = PAIRED_ORGANS[organ]
        words = [w.lower() for w in words]
        if any(w.startswith("bilateral") or w == "both" for w in words) or ("left" in words and "right" in words):
            return [left, right]
        if "left" in words:
            return [left]
        if "right" in words:
            return [right]
        return []

    @staticmethod
    def _subsegment(reach: str, organ: str) -> str | None:
        if organ == "liver":
            terms = lx.liver_segments(reach)
            parts: list[str] = []
            for t in terms:
                parts.extend(p for p in t.value.split("/") if p not in parts)
        elif organ == "pancreas":
            parts = [t.value for t in lx.pancreas_parts(reach)]
        elif organ.startswith("kidney"):
            parts = [t.value for t in lx.kidney_parts(reach)]
        else:
            return None
        if not parts:
            return None
        order = SUBSEGMENTS["kidney" if organ.startswith("kidney") else organ]
        return "/".join(p for p in order if p in parts)

    # ---------------------------------------------------------- normal organs
    def _normal_statements(
        self, s: str, mentions: list[Mention], organs: list[lx.Term], header_organs: list[str]
    ) -> None:
        bounds = [0] + [m.end() for m in lx.CLAUSE_BREAK_RE.finditer(s)] + [len(s)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            clause = s[a:b]
            positive = [m for m in mentions if a <= m.noun_start < b and not m.negated and not m.descriptive]
            if positive:
                continue
            negated_lesion = any(a <= m.noun_start < b and m.negated and not m.resolved for m in mentions)
            if not (negated_lesion or lx.NORMAL_RE.search(clause)):
                continue
            terms = [o for o in organs if a <= o.start < b]
            if terms:
                for o in terms:
                    self.normal.extend(self._sided(s, o, plural_both=True))
            else:
                self.normal.extend(header_organs)

    # ------------------------------------------------------------------ finish
    def facts(self, case_id: str, info: ExtractorInfo) -> ReportFacts:
        records = _merge_impression(self.records)
        tumours = [r.tumour for r in records]
        with_tumour = {t.organ for t in tumours}
        for t in tumours:
            with_tumour.update(PAIRED_ORGANS.get(t.organ, ()))
        normal = [o for o in expand_sides(self.normal) if o not in with_tumour]
        return ReportFacts(
            case_id=case_id,
            tumours=tumours,
            normal_organs=normal,
            warnings=self.warnings,
            extractor=info,
        )


def _common_unsided(organs: list[str]) -> str | None:
    for unsided, pair in PAIRED_ORGANS.items():
        if set(organs) <= set(pair):
            return unsided
    return None


def _same_lesion(a: Tumour, b: Tumour) -> bool:
    paired = a.organ in PAIRED_ORGANS.get(b.organ, ()) or b.organ in PAIRED_ORGANS.get(a.organ, ())
    if a.organ != b.organ and not paired:
        return False
    if a.subsegment and b.subsegment and not set(a.subsegment.split("/")) & set(b.subsegment.split("/")):
        return False
    if a.diameters_mm and b.diameters_mm:
        return abs(a.diameters_mm[0] - b.diameters_mm[0]) <= 0.5
    return True


def _merge_impression(records: list[_Record]) -> list[_Record]:
    """Drop IMPRESSION tumours that repeat a FINDINGS tumour (filling its gaps)."""
    findings = [r for r in records if r.section != "impression"]
    if not findings:
        return records
    out = list(findings)
    used: set[int] = set()
    for r in records:
        if r.section != "impression":
            continue
        match = None
        for i, f in enumerate(findings):
            if i not in used and _same_lesion(f.tumour, r.tumour):
                match = i
                break
        if match is None:
            group = [f for f in findings if f.tumour.organ == r.tumour.organ]
            if group and not r.tumour.diameters_mm:
                continue  # "multiple hepatic metastases" summarising measured ones
            out.append(r)
            continue
        used.add(match)
        f = findings[match].tumour
        if f.malignancy in ("unknown", "indeterminate") and r.tumour.malignancy != "unknown":
            f.malignancy = r.tumour.malignancy
        if f.subsegment is None and r.tumour.subsegment:
            f.subsegment = r.tumour.subsegment
        if not f.diameters_mm and r.tumour.diameters_mm:
            f.diameters_mm = r.tumour.diameters_mm
    return out
