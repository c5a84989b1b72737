"""``rsuper extract``: tumour facts from a CSV/JSONL of reports (resumable)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EPILOG = """\
examples:
  rsuper extract --reports reports.csv --out facts.jsonl
  rsuper extract --reports reports.csv --out facts.jsonl --csv facts.csv
  rsuper extract --reports reports.jsonl --out facts.jsonl --backend openai --url http://127.0.0.1:8000
  rsuper extract --reports reports.csv --out facts.jsonl --backend transformers --model ~/models/Llama-3.1-8B-Instruct

Re-running the same command resumes: case ids already in --out are skipped.
Rows that cannot be extracted are listed in <out>.errors.jsonl. Formats: docs/report-facts.md
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "extract",
        help="extract tumour facts from radiology reports",
        description="Extract tumour facts (organ, sub-segment, diameters in mm, count, attenuation, "
        "malignancy, evidence) from a CSV or JSONL of reports with columns case_id,report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reports", required=True, type=Path, help="CSV or JSONL with case_id and report columns")
    p.add_argument("--out", required=True, type=Path, help="output facts, JSON Lines (appended, resumable)")
    p.add_argument("--csv", type=Path, help="also write the flat facts table (one row per tumour) here")
    p.add_argument("--reference-csv", type=Path, help="also write the reference R-Super per-tumour CSV here")
    p.add_argument("--backend", choices=("rules", "transformers", "openai"), default="rules",
                   help="rules: offline, deterministic (default); transformers: local model folder; "
                        "openai: a local OpenAI-compatible server")
    p.add_argument("--model",
                   help="transformers: model folder or .gguf file; openai: model name (default: first served)")
    p.add_argument("--url",
                   help="openai: base URL of the server, e.g. http://127.0.0.1:8000 (nothing is sent elsewhere)")
    p.add_argument("--workers", type=int, default=1, help="rules: processes; openai: concurrent requests (default 1)")
    p.add_argument("--batch-size", type=int, default=4, help="transformers: reports per generate call (default 4)")
    p.add_argument("--device", default="cpu", help="transformers: cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--max-retries", type=int, default=2, help="LLM backends: retries for invalid output (default 2)")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"),
                   help="openai: API key if your server wants one (default: $OPENAI_API_KEY)")
    p.add_argument("--schema-style", choices=("json_schema", "json_object", "none"), default="json_schema",
                   help="openai: how the answer's JSON schema is sent: json_schema (vLLM, Ollama, llama.cpp "
                        "server; default), json_object (llama-cpp-python's server), none")
    p.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request (default 120)")
    p.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                   help="bar on a terminal (auto), or one JSON event per line on stdout (jsonl)")
    p.add_argument("--print", dest="print_table", action="store_true", help="print the facts as a table at the end")
    return p


def run(args: argparse.Namespace) -> int:
    from .backends import make_extractor
    from .batch import errors_path, read_facts_jsonl, run_batch

    if args.workers < 1:
        print("error: --workers must be >= 1", file=sys.stderr)
        return 2
    try:
        extractor = make_extractor(
            args.backend, model=args.model, url=args.url, workers=args.workers, batch_size=args.batch_size,
            device=args.device, max_retries=args.max_retries, timeout_s=args.timeout,
            schema_style=args.schema_style, api_key=args.api_key,
        )
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run_batch(args.reports, args.out, extractor, progress=args.progress)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        extractor.close()
    facts = None
    if args.csv or args.reference_csv or args.print_table:
        facts = read_facts_jsonl(args.out)
    if args.csv:
        from .table import write_facts_csv

        write_facts_csv(facts, args.csv)
    if args.reference_csv:
        from .batch import read_reports
        from .reference_csv import write_reference_csv

        texts = {r.case_id: r.text for r in read_reports(args.reports) if r.problem is None}
        write_reference_csv(facts, args.reference_csv, texts)
    if args.print_table:
        from .display import print_facts_table

        print_facts_table(facts)
    info = summary.as_dict()
    if args.progress != "jsonl":
        err = f"; errors listed in {errors_path(args.out)}" if summary.errors else ""
        print(
            f"{summary.extracted} extracted, {summary.skipped} already done, {summary.errors} errors "
            f"in {info['elapsed_s']} s{err}",
            file=sys.stderr,
        )
    else:
        print(json.dumps({"event": "summary", **info}), flush=True)
    return 0
