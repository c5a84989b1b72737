"""``rsuper schema``: print or write the JSON Schema of a facts record."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of the report-facts records",
        description="Print (or write) the JSON Schema of one facts.jsonl record, or of the answer asked "
        "from a language model (--llm). Resources/report-facts.schema.json is this output.",
    )
    p.add_argument("--llm", action="store_true", help="the schema of a language model's answer instead")
    p.add_argument("--out", type=Path, help="write to this file instead of stdout")
    return p


def render(llm: bool = False) -> str:
    """The schema as indented JSON text (ends with a newline)."""
    from .json_schema import facts_json_schema, llm_output_schema

    schema = llm_output_schema() if llm else facts_json_schema()
    return json.dumps(schema, indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    text = render(args.llm)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0
