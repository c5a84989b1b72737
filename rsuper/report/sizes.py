"""Size expressions in report text, converted to millimetres.

Recognised forms (units mm/cm, also spelt out; ``x``, ``×``, ``*`` or ``by``
between dimensions; a unit after each dimension or only after the last):

* ``2.3 cm``, ``23 mm``, ``2.3-cm``;
* ``3.2 x 2.1 cm``, ``3.2 cm x 2.1 cm``, ``32 x 21 x 18 mm``;
* ranges ``5-12 mm``, ``5 to 12 mm``, ``from 5 to 12 mm``, ``between 5 and 12 mm``
  (kind ``range``: the size of the largest is the upper end);
* lists ``8 and 5 mm``, ``1.2, 0.9 and 0.5 cm`` (kind ``list``: one size each).

Each match keeps its span so callers can decide whether it is a prior-study
size and which lesion it belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"\d+(?:\.\d+)?"
_UNIT = r"(?:mm|cm|millimet(?:er|re)s?|centimet(?:er|re)s?)\b\.?"
_U = rf"\s*-?\s*{_UNIT}"
_X = r"\s*(?:x|×|\*|by)\s*"

_DIMS = re.compile(
    rf"(?<![\d.])(?P<a>{_NUM})(?P<ua>{_U})?{_X}(?P<b>{_NUM})(?P<ub>{_U})?"
    rf"(?:{_X}(?P<c>{_NUM})(?P<uc>{_U})?)?",
    re.IGNORECASE,
)
_RANGE = re.compile(
    rf"(?:(?:from|between)\s+)?(?<![\d.])(?P<a>{_NUM})(?P<ua>{_U})?\s*(?:-|–|to|and)\s*(?P<b>{_NUM})(?P<ub>{_U})",
    re.IGNORECASE,
)
_LIST = re.compile(
    rf"(?<![\d.])(?P<items>{_NUM}(?:{_U})?(?:\s*,\s*{_NUM}(?:{_U})?)*,?\s+(?:and|&)\s+{_NUM})(?P<u>{_U})",
    re.IGNORECASE,
)
_SINGLE = re.compile(rf"(?<![\d.])(?P<a>{_NUM})(?P<u>{_U})", re.IGNORECASE)
_CHANGE = re.compile(
    r"\b(?:increas|decreas|grow|grew|enlarg|shrunk|shrank|reduc|chang|progress|regress)\w*"
    r"(?:\s+in\s+size)?(?:\s+\w+)?\s*$",
    re.IGNORECASE,
)


@dataclass
class SizeMention:
    """One size expression.

    Attributes:
        start, end: span in the searched text.
        sizes_mm: one entry per lesion size named; each entry is 1-3
            diameters in mm, largest first (``list`` gives several entries).
        kind: ``single``, ``dims``, ``range``, ``list`` or ``change``
            ("grew from 8 to 12 mm": the current size only).
    """

    start: int
    end: int
    sizes_mm: list[list[float]]
    kind: str


def _factor(unit: str | None, fallback: str) -> float:
    u = (unit or fallback).strip(" -.").lower()
    return 10.0 if u.startswith("c") else 1.0


def _mm(value: str, unit: str | None, fallback: str) -> float:
    return round(float(value) * _factor(unit, fallback), 1)


def _overlaps(spans: list[tuple[int, int]], s: int, e: int) -> bool:
    return any(s < b and a < e for a, b in spans)


def find_sizes(text: str) -> list[SizeMention]:
    """All size expressions in ``text``, in order, without overlaps.

    Dimension groups and ranges are matched before lists and single sizes,
    so ``3.2 x 2.1 cm`` is one mention with two diameters.
    """
    found: list[SizeMention] = []
    taken: list[tuple[int, int]] = []

    for m in _DIMS.finditer(text):
        units = [m.group("ua"), m.group("ub"), m.group("uc")]
        last = next((u for u in reversed(units) if u), None)
        if last is None:
            continue  # "3 x 2" without a unit is not a size
        dims = [m.group("a"), m.group("b")] + ([m.group("c")] if m.group("c") else [])
        vals = sorted((_mm(v, u, last) for v, u in zip(dims, units)), reverse=True)
        found.append(SizeMention(m.start(), m.end(), [vals], "dims"))
        taken.append((m.start(), m.end()))

    for m in _RANGE.finditer(text):
        if _overlaps(taken, m.start(), m.end()):
            continue
        first = _mm(m.group("a"), m.group("ua"), m.group("ub"))
        second = _mm(m.group("b"), m.group("ub"), m.group("ub"))
        if _CHANGE.search(text[max(0, m.start() - 40):m.start()]):
            # "decreased from 20 to 15 mm": the size now is the second value
            found.append(SizeMention(m.start(), m.end(), [[second]], "change"))
            taken.append((m.start(), m.end()))
            continue
        if first >= second and "and" in text[m.start():m.end()].lower():
            continue  # "8 and 5 mm" is a list, not a range
        found.append(SizeMention(m.start(), m.end(), [[max(first, second)]], "range"))
        taken.append((m.start(), m.end()))

    for m in _LIST.finditer(text):
        if _overlaps(taken, m.start(), m.end()):
            continue
        unit = m.group("u")
        items = re.findall(rf"({_NUM})((?:{_U})?)", m.group("items"))
        sizes = [[_mm(v, u or None, unit)] for v, u in items]
        found.append(SizeMention(m.start(), m.end(), sizes, "list"))
        taken.append((m.start(), m.end()))

    for m in _SINGLE.finditer(text):
        if _overlaps(taken, m.start(), m.end()):
            continue
        found.append(SizeMention(m.start(), m.end(), [[_mm(m.group("a"), m.group("u"), "mm")]], "single"))
        taken.append((m.start(), m.end()))

    found.sort(key=lambda s: s.start)
    return found
