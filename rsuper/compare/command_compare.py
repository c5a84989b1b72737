"""``rsuper compare``: the AI's tumours against the report's, for one case or a cohort."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  rsuper compare --tumours tumours.json --ct ct.nii.gz --facts facts.jsonl --case-id case7 \\
      --out comparison.json --html comparison.html --reports reports.csv
  rsuper compare --tumours tumours.nii.gz --ct ct.nii.gz --organs organs.nii.gz --facts facts.jsonl \\
      --case-id case7 --out comparison.json
  rsuper compare --tumours predictions/ --ct cts/ --facts facts.jsonl --out cohort.json --html cohort.html

--tumours: a tumours.json from rsuper predict, or any tumour label NIfTI (then --organs is required to
name the organs). A folder of them (<case>.json or <case>.nii.gz) compares every case of --facts that has
one, and writes one summary listing the disagreements, worst first (case pages next to --html).
Flags: agrees, size_differs, ai_only, normal_organ, report_only, not_assessed.
Details: docs/inference-and-comparison.md
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="compare AI tumours with the report's tumours",
        description="Match the AI's tumours to the tumours a report describes, organ by organ, by size "
        "(optimal assignment), and flag agreement, tumours only one side has, size differences and tumours "
        "in organs the report calls normal.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tumours", required=True, type=Path, help="tumours.json or tumour label NIfTI, or a folder")
    p.add_argument("--facts", required=True, type=Path, help="facts.jsonl (rsuper extract) or one case's facts.json")
    p.add_argument("--out", required=True, type=Path, help="comparison JSON to write")
    p.add_argument("--ct", type=Path,
                   help="the CT (or a folder of CTs): snapshots in the HTML, HU of a NIfTI's tumours")
    p.add_argument("--organs", type=Path, help="organ mask (or a folder); required when --tumours is a NIfTI")
    p.add_argument("--case-id", help="the case in --facts (default: the tumours file's case)")
    p.add_argument("--html", type=Path, help="also write the HTML page (cohort: the summary, case pages beside it)")
    p.add_argument("--report", type=Path, help="the case's report text (.txt), to show whole sentences")
    p.add_argument("--reports", type=Path, help="reports CSV/JSONL (case_id, report), to show whole sentences")
    p.add_argument("--label-map", type=Path, help="JSON label map of --organs (default: the R-Super map)")
    p.add_argument("--size-tolerance", type=float, default=0.3,
                   help="allowed difference of the largest diameter, fraction of the reported one (default 0.3)")
    p.add_argument("--size-tolerance-mm", type=float, default=5.0,
                   help="smallest allowed difference of the largest diameter, mm (default 5)")
    p.add_argument("--assessed-organs",
                   help="comma-separated organs the model looks at (default: from tumours.json, else "
                        "liver,pancreas,kidney)")
    return p


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _prediction_files(folder: Path) -> dict[str, Path]:
    """Case id -> ``<case>.json`` (preferred) or the tumour NIfTI (flat, or ``<case>/tumours.*``)."""
    from rsuper.infer.cases import find_case_files

    found = {p.stem: p for p in sorted(folder.glob("*.json"))}
    found.update({p.parent.name: p for p in sorted(folder.glob("*/tumours.json")) if p.parent.name not in found})
    for case_id, path in find_case_files(folder, "tumours").items():
        found.setdefault(case_id, path)
    return found


def run(args: argparse.Namespace) -> int:
    from rsuper.infer.volumes import InputError

    from .inputs import read_facts, read_report_texts
    from .match import CompareOptions

    try:
        options = CompareOptions(args.size_tolerance, args.size_tolerance_mm)
    except ValueError as exc:
        return _error(str(exc))
    for name in ("tumours", "facts", "ct", "organs", "report", "reports", "label_map"):
        path = getattr(args, name)
        if path is not None and not path.exists():
            return _error(f"--{name.replace('_', '-')} {path} does not exist")
    assessed = [o.strip() for o in args.assessed_organs.split(",") if o.strip()] if args.assessed_organs else None
    if assessed:
        from rsuper.report.schema import ORGANS

        unknown = [o for o in assessed if o not in ORGANS]
        if unknown:
            return _error(f"--assessed-organs: unknown organ(s) {unknown}")
    label_map = None
    if args.label_map is not None:
        from rsuper.anatomy.label_maps import read_label_map

        try:
            label_map = read_label_map(args.label_map)
        except ValueError as exc:
            return _error(f"--label-map: {exc}")
    try:
        facts = read_facts(args.facts)
        texts = read_report_texts(args.reports) if args.reports is not None else {}
    except (ValueError, OSError) as exc:
        return _error(str(exc))
    common = {"facts": facts, "texts": texts, "options": options, "assessed": assessed, "label_map": label_map}
    try:
        if args.tumours.is_dir():
            return _run_cohort(args, **common)
        return _run_case(args, **common)
    except (InputError, ValueError, OSError) as exc:
        return _error(str(exc))


def _run_case(args: argparse.Namespace, facts: dict, texts: dict, options: Any, assessed: Any, label_map: Any) -> int:
    from .inputs import load_ai_tumours, read_report_texts
    from .report import case_json, compare_ai_tumours, write_case_html

    for name in ("ct", "organs"):
        if getattr(args, name) is not None and getattr(args, name).is_dir():
            return _error(f"--{name} is a folder but --tumours is a single file")
    ai = load_ai_tumours(args.tumours, args.organs, args.ct, label_map)
    case_id = args.case_id or (ai.case_id if ai.case_id in facts else None)
    if case_id is None and len(facts) == 1:
        case_id = next(iter(facts))
    if case_id is None or case_id not in facts:
        return _error(f"case {case_id or ai.case_id!r} is not in {args.facts}; give --case-id")
    comparison = compare_ai_tumours(ai, facts[case_id], options, assessed)
    sources = {"tumours": str(args.tumours), "facts": str(args.facts), "ct": None if args.ct is None else str(args.ct),
               "organs": None if args.organs is None else str(args.organs)}
    _write_json(args.out, case_json(comparison, sources))
    if args.html is not None:
        if args.report is not None:
            texts = read_report_texts(args.report, case_id)
        write_case_html(args.html, comparison, ai, args.ct, texts.get(case_id))
    counts = comparison.counts()
    print(f"{case_id}: {counts['agrees']} agree, {len(comparison.disagreements)} disagreement(s) "
          f"(severity {comparison.severity:.2f}); written to {args.out}", file=sys.stderr)
    return 0


def _run_cohort(args: argparse.Namespace, facts: dict, texts: dict, options: Any, assessed: Any,
                label_map: Any) -> int:
    from rsuper.infer.cases import find_case_files

    from .inputs import load_ai_tumours
    from .pages import cohort_page
    from .report import cohort_summary, compare_ai_tumours, write_case_html

    if args.report is not None or args.case_id is not None:
        return _error("--report and --case-id name one case; a folder of tumours compares every case of --facts")
    for name in ("ct", "organs"):
        if getattr(args, name) is not None and not getattr(args, name).is_dir():
            return _error(f"--tumours is a folder, so --{name} must be a folder too")
    predictions = _prediction_files(args.tumours)
    cts = find_case_files(args.ct, "ct") if args.ct is not None else {}
    organs = find_case_files(args.organs, "organs") if args.organs is not None else {}
    pages_dir = args.html.with_name(args.html.stem + "_cases") if args.html is not None else None
    comparisons, missing, links = [], {}, {}
    failed = 0
    for case_id, case_facts in facts.items():
        if case_id not in predictions:
            missing[case_id] = "no prediction"
            continue
        try:
            ai = load_ai_tumours(predictions[case_id], organs.get(case_id), cts.get(case_id), label_map)
            comparison = compare_ai_tumours(ai, case_facts, options, assessed)
            if pages_dir is not None:
                page = write_case_html(pages_dir / f"{case_id}.html", comparison, ai, cts.get(case_id),
                                       texts.get(case_id))
                links[case_id] = f"{pages_dir.name}/{page.name}"
        except Exception as exc:  # one broken case never stops the cohort; the reason is listed
            failed += 1
            missing[case_id] = f"{type(exc).__name__}: {exc}"
            continue
        comparisons.append(comparison)
    _write_json(args.out, cohort_summary(comparisons, missing, options))
    if args.html is not None:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(cohort_page(comparisons, links, texts, missing), encoding="utf-8")
    disagreeing = sum(c.status == "disagrees" for c in comparisons)
    print(f"{len(comparisons)} case(s) compared, {disagreeing} with disagreements, {len(missing)} not compared "
          f"({failed} failed); written to {args.out}", file=sys.stderr)
    return 1 if failed else 0
