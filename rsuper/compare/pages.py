"""Self-contained HTML pages of a comparison: one per case, one cohort summary.

A case page lists every finding (flag, organ, the AI's and the report's
diameters), shows each AI tumour's axial and coronal snapshots (PNG embedded as
``data:`` URIs, :mod:`rsuper.compare.render`) and the report sentence the
tumour was matched to, with the facts' evidence span marked (``<mark>``) and
the sizes in it in bold. The cohort page lists the disagreements of all cases,
worst first. Every piece of text is escaped (``html.escape``); the pages load
nothing from elsewhere.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rsuper.infer.records import TumourRecord
from rsuper.report.sizes import find_sizes

from .match import AGREES, AI_ONLY, NORMAL_ORGAN, NOT_ASSESSED, REPORT_ONLY, SIZE_DIFFERS, CaseComparison, Finding

#: Flag -> (label shown, badge colour).
FLAG_STYLE: dict[str, tuple[str, str]] = {
    AGREES: ("agrees", "#2e7d32"),
    SIZE_DIFFERS: ("size differs", "#ef6c00"),
    AI_ONLY: ("AI only", "#c62828"),
    NORMAL_ORGAN: ("organ reported normal", "#6a1b9a"),
    REPORT_ONLY: ("AI misses", "#ad1457"),
    NOT_ASSESSED: ("not assessed", "#757575"),
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; font-size: 0.92em; }
th { background: #f3f3f3; }
.badge { color: #fff; border-radius: 0.6em; padding: 0.1em 0.6em; font-size: 0.85em; white-space: nowrap; }
.tumour { border: 1px solid #ddd; border-radius: 0.4em; padding: 0.6em 1em; margin: 1em 0; }
.sentence { background: #fafafa; border-left: 3px solid #bbb; padding: 0.3em 0.8em; }
mark { background: #fff3a0; }
.muted { color: #777; }
"""

#: A sentence ends at . ! ? followed by white space (not the point of "2.5 cm"), or at a line break.
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def badge(flag: str) -> str:
    """A coloured label for a flag."""
    label, colour = FLAG_STYLE.get(flag, (flag, "#555"))
    return f'<span class="badge" style="background:{colour}">{_e(label)}</span>'


def _bold_sizes(text: str) -> str:
    """Escaped ``text`` with its size expressions (``2.1 x 1.5 cm``) in ``<strong>``."""
    out, last = [], 0
    for size in find_sizes(text):
        out += [_e(text[last:size.start]), "<strong>", _e(text[size.start:size.end]), "</strong>"]
        last = size.end
    out.append(_e(text[last:]))
    return "".join(out)


def highlight_sentence(report_text: str | None, evidence: Mapping[str, Any] | None) -> str:
    """The report sentence holding the evidence span, the span in ``<mark>`` and its sizes in bold.

    Without the report text (or when the span does not match it) the evidence
    text alone is shown, marked. Returns ``""`` without evidence.
    """
    if not evidence:
        return ""
    text, start, end = str(evidence.get("text", "")), int(evidence.get("start", 0)), int(evidence.get("end", 0))
    if report_text is None or report_text[start:end] != text:
        return f"<mark>{_bold_sizes(text)}</mark>"
    ends = [m.end() for m in _SENTENCE_END.finditer(report_text)]
    left = max((e for e in ends if e <= start), default=0)
    right = min((e for e in ends if e >= max(end, start + 1)), default=len(report_text))
    return (_e(report_text[left:start].lstrip()) + f"<mark>{_bold_sizes(text)}</mark>"
            + _e(report_text[end:right].rstrip()))


def _mm(values: Sequence[float] | None) -> str:
    if values is None:
        return "&ndash;"
    return _e(" x ".join(f"{v:.0f}" for v in values) + " mm") if values else "size not stated"


def _where(organ: str | None, subsegment: str | None) -> str:
    text = (organ or "unknown organ").replace("_", " ")
    return _e(f"{text} ({subsegment.replace('_', ' ')})" if subsegment else text)


def _case_cell(case_id: str, link: str | None) -> str:
    return f'<a href="{_e(link)}">{_e(case_id)}</a>' if link else _e(case_id)


def _finding_row(finding: Finding, report_text: str | None, case: tuple[str, str | None] | None = None) -> str:
    """One table row; ``case`` = ``(case id, link or None)`` adds a first column."""
    case_td = f"<td>{_case_cell(*case)}</td>" if case is not None else ""
    diff = "&ndash;" if finding.difference_mm is None else _e(f"{finding.difference_mm:+.0f} mm "
                                                              f"(tol. {finding.tolerance_mm:.0f})")
    ai = "&ndash;" if finding.ai_id is None else _e(f"#{finding.ai_id}")
    return (f"<tr>{case_td}<td>{badge(finding.flag)}</td><td>{_where(finding.organ, finding.subsegment)}</td>"
            f"<td>{ai}</td><td>{_mm(finding.ai_diameters_mm)}</td><td>{_mm(finding.report_diameters_mm)}</td>"
            f"<td>{diff}</td><td>{_e(finding.message)}<div class=\"sentence\">"
            f"{highlight_sentence(report_text, finding.evidence)}</div></td></tr>")


_FINDING_HEAD = ("<tr>{case}<th>flag</th><th>organ</th><th>AI</th><th>AI diameters</th><th>report diameters</th>"
                 "<th>difference</th><th>details and report sentence</th></tr>")


def _document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _record_line(record: TumourRecord) -> str:
    parts = [f"volume {record.volume_ml:.2f} mL",
             f"long axis {record.long_axis_mm:.1f} mm, short axis {record.short_axis_mm:.1f} mm, "
             f"cranio-caudal {record.craniocaudal_mm:.1f} mm"]
    if record.mean_hu is not None:
        parts.append(f"mean {record.mean_hu:.0f} HU")
    if record.max_probability is not None:
        parts.append(f"max probability {record.max_probability:.2f}")
    parts.append("centroid (" + ", ".join(f"{v:.0f}" for v in record.centroid_mm) + ") mm")
    return _e("; ".join(parts))


def case_page(comparison: CaseComparison, records: Sequence[TumourRecord], images: Mapping[int, str],
              report_text: str | None = None) -> str:
    """The HTML page of one case.

    Args:
        comparison: the case's findings.
        records: the AI's tumours.
        images: tumour id -> ``data:image/png;base64,...`` snapshot (tumours without one show none).
        report_text: the report, to show whole sentences around the evidence spans.
    """
    counts = comparison.counts()
    summary = " ".join(f"{badge(flag)} {counts[flag]}" for flag in FLAG_STYLE if counts[flag])
    body = [f"<h1>AI vs report: {_e(comparison.case_id)}</h1>",
            f"<p>{_e(comparison.n_ai)} AI tumour(s), {_e(comparison.n_report)} reported tumour(s). "
            f"{summary or 'nothing to compare'}</p>"]
    if comparison.normal_organs:
        body.append(f"<p class=\"muted\">Organs the report calls normal: "
                    f"{_e(', '.join(o.replace('_', ' ') for o in comparison.normal_organs))}</p>")
    body += ["<h2>Findings</h2>", "<table>", _FINDING_HEAD.format(case="")]
    body += [_finding_row(f, report_text) for f in sorted(comparison.findings, key=lambda f: -f.severity)]
    body.append("</table>")
    by_id = {f.ai_id: f for f in comparison.findings if f.ai_id is not None}
    if records:
        body.append("<h2>AI tumours</h2>")
    for record in sorted(records, key=lambda r: r.id):
        finding = by_id.get(record.id)
        flag = badge(finding.flag) if finding is not None else ""
        body.append(f'<div class="tumour" id="tumour-{record.id}"><h3>Tumour {record.id}: '
                    f"{_where(record.organ, record.subsegment)} {flag}</h3><p>{_record_line(record)}</p>")
        if record.id in images:
            body.append(f'<img src="{_e(images[record.id])}" alt="{_e(f"tumour {record.id}, axial and coronal")}">')
        if finding is not None:
            sentence = highlight_sentence(report_text, finding.evidence)
            body.append(f"<p>{_e(finding.message)}</p>")
            if sentence:
                body.append(f'<div class="sentence">{sentence}</div>')
        body.append("</div>")
    return _document(f"AI vs report: {comparison.case_id}", body)


def cohort_page(comparisons: Sequence[CaseComparison], links: Mapping[str, str],
                report_texts: Mapping[str, str], missing: Mapping[str, str] | None = None) -> str:
    """The cohort summary: every disagreement of every case, worst first, then a table per case.

    Args:
        comparisons: one per case.
        links: case id -> relative link to its case page (cases without one are not linked).
        report_texts: case id -> report text (for the sentences).
        missing: case id -> why it could not be compared.
    """
    rows = sorted(((c, f) for c in comparisons for f in c.disagreements), key=lambda cf: -cf[1].severity)
    body = [f"<h1>AI vs reports: {_e(len(comparisons))} case(s)</h1>",
            f"<p>{_e(sum(c.status == 'disagrees' for c in comparisons))} case(s) with disagreements, "
            f"{_e(len(rows))} disagreement(s), worst first.</p>",
            "<table>", _FINDING_HEAD.format(case="<th>case</th>")]
    for comparison, finding in rows:
        case = (comparison.case_id, links.get(comparison.case_id))
        body.append(_finding_row(finding, report_texts.get(comparison.case_id), case))
    body += ["</table>", "<h2>Cases</h2>", "<table>",
             "<tr><th>case</th><th>severity</th><th>AI</th><th>report</th>"
             + "".join(f"<th>{badge(flag)}</th>" for flag in FLAG_STYLE) + "</tr>"]
    for comparison in sorted(comparisons, key=lambda c: (-c.severity, c.case_id)):
        counts = comparison.counts()
        cells = [_case_cell(comparison.case_id, links.get(comparison.case_id)), f"{comparison.severity:.2f}",
                 str(comparison.n_ai), str(comparison.n_report), *(str(counts[f]) for f in FLAG_STYLE)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    body.append("</table>")
    if missing:
        body += ["<h2>Not compared</h2>", "<ul>"]
        body += [f"<li>{_e(case)}: {_e(reason)}</li>" for case, reason in sorted(missing.items())]
        body.append("</ul>")
    return _document("AI vs reports", body)
