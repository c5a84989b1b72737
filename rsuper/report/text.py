"""Report text layout: sections, header blocks and sentences, with character spans.

A radiology report is laid out as sections (``FINDINGS:``, ``IMPRESSION:``),
organ headers (``Liver: ...``), list items (``1. ...``) and sentences. This
module cuts it into :class:`Sentence` objects that keep their span in the
original text, so every fact can point back at its words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Section names (upper-cased, without colon) -> section kind.
SECTION_KINDS: dict[str, str] = {
    "FINDINGS": "findings",
    "FINDING": "findings",
    "ABDOMEN": "findings",
    "PELVIS": "findings",
    "ABDOMEN AND PELVIS": "findings",
    "LOWER CHEST": "findings",
    "CHEST": "findings",
    "IMPRESSION": "impression",
    "IMPRESSIONS": "impression",
    "CONCLUSION": "impression",
    "CONCLUSIONS": "impression",
    "SUMMARY": "impression",
    "OPINION": "impression",
    "INDICATION": "skip",
    "INDICATIONS": "skip",
    "HISTORY": "skip",
    "CLINICAL HISTORY": "skip",
    "CLINICAL INFORMATION": "skip",
    "CLINICAL INDICATION": "skip",
    "REASON FOR EXAM": "skip",
    "REASON FOR STUDY": "skip",
    "TECHNIQUE": "skip",
    "PROTOCOL": "skip",
    "COMPARISON": "skip",
    "COMPARISONS": "skip",
    "PROCEDURE": "skip",
    "EXAM": "skip",
    "EXAMINATION": "skip",
    "CONTRAST": "skip",
    "DOSE": "skip",
}

_HEADER = re.compile(r"^[ \t]*(?:[-*•][ \t]*)?([A-Za-z][A-Za-z /&,'-]{0,40}?)[ \t]*:[ \t]*")
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d{1,2}[.)]|[-*•])[ \t]+")
# Words after which a period does not end a sentence.
_ABBREVIATIONS = {"approx", "dr", "e.g", "i.e", "vs", "cf", "fig", "st", "mr", "mrs", "ca"}
_SENT_END = re.compile(r"[.!?](?=\s|$)")


@dataclass
class Sentence:
    """One sentence of a report.

    Attributes:
        text: the sentence as it stands in the report (``report[start:end]``).
        start, end: character offsets into the report.
        section: ``findings``, ``impression``, ``skip`` or ``body`` (no header seen).
        header: the organ-header text of its block (``"Liver"``) or ``""``.
    """

    text: str
    start: int
    end: int
    section: str
    header: str


def _split_block(text: str, start: int, end: int, section: str, header: str) -> list[Sentence]:
    out: list[Sentence] = []
    pos = start
    for m in _SENT_END.finditer(text, start, end):
        word = re.search(r"([A-Za-z.]+)$", text[pos:m.start()])
        if m.group() == "." and word and word.group(1).lower().rstrip(".") in _ABBREVIATIONS:
            continue
        out.extend(_make_sentence(text, pos, m.end(), section, header))
        pos = m.end()
    out.extend(_make_sentence(text, pos, end, section, header))
    return out


def _make_sentence(text: str, start: int, end: int, section: str, header: str) -> list[Sentence]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end <= start:
        return []
    return [Sentence(text[start:end], start, end, section, header)]


def split_sentences(text: str) -> list[Sentence]:
    """Cut a report into sentences with spans, sections and organ headers.

    Line breaks inside a paragraph are treated as spaces; a blank line, a
    header (``Liver:``, ``IMPRESSION:``) or a list marker starts a new block.
    Section headers set the section of everything after them; other headers
    (organ names) set ``header`` for their block only.
    """
    sentences: list[Sentence] = []
    section = "body"
    header = ""
    block_start: int | None = None
    offset = 0

    def flush(end: int) -> None:
        nonlocal block_start
        if block_start is not None and end > block_start:
            sentences.extend(_split_block(text, block_start, end, section, header))
        block_start = None

    for line in text.splitlines(keepends=True):
        line_start = offset
        offset += len(line)
        content = line.rstrip("\r\n")
        if not content.strip():
            flush(line_start)
            header = ""
            continue
        m = _HEADER.match(content)
        name = m.group(1).strip().upper() if m else ""
        if m and name in SECTION_KINDS:
            flush(line_start)
            section = SECTION_KINDS[name]
            header = ""
            block_start = line_start + m.end()
            rest = content[m.end():]
            m2 = _HEADER.match(rest) or _LIST_ITEM.match(rest)
            if m2 is not None:
                if m2.re is _HEADER and m2.group(1).strip().upper() not in SECTION_KINDS:
                    header = m2.group(1).strip()
                block_start += m2.end()
            continue
        if m and len(name.split()) <= 4:
            flush(line_start)
            header = m.group(1).strip()
            block_start = line_start + m.end()
            continue
        if _LIST_ITEM.match(content):
            flush(line_start)
            block_start = line_start + _LIST_ITEM.match(content).end()
            continue
        if block_start is None:
            block_start = line_start
    flush(len(text))
    return sentences
