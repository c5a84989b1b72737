"""JSON Schemas generated from the facts dataclasses' vocabularies.

Two schemas:

* :func:`facts_json_schema` — one record of ``facts.jsonl`` (shipped as
  ``Resources/report-facts.schema.json``; ``rsuper schema`` regenerates it);
* :func:`llm_output_schema` — what a language model is asked to return for one
  report (no case id, evidence as a quoted sentence rather than a span).
"""

from __future__ import annotations

from typing import Any

from .schema import ATTENUATIONS, MALIGNANCIES, MAX_DIAMETER_MM, ORGANS, SCHEMA_VERSION, SUBSEGMENTS


def _subsegment_pattern() -> str:
    names = sorted({s for subs in SUBSEGMENTS.values() for s in subs})
    one = "(" + "|".join(names) + ")"
    return f"^{one}(/{one})*$"


def _diameters() -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DIAMETER_MM},
        "maxItems": 3,
        "description": "Diameters in mm, largest first (0-3 numbers).",
    }


def _tumour_properties() -> dict[str, Any]:
    return {
        "organ": {"enum": list(ORGANS)},
        "subsegment": {
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": _subsegment_pattern()}],
            "description": "Sub-segment of the organ; several joined by '/'; null if not stated.",
        },
        "diameters_mm": _diameters(),
        "count": {"type": "integer", "minimum": 1},
        "count_is_lower_bound": {"type": "boolean"},
        "attenuation": {"enum": list(ATTENUATIONS)},
        "malignancy": {"enum": list(MALIGNANCIES)},
    }


def facts_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one :class:`~rsuper.report.schema.ReportFacts` record."""
    tumour = {
        "type": "object",
        "required": ["organ", "diameters_mm", "count"],
        "properties": {
            **_tumour_properties(),
            "evidence": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["text", "start", "end"],
                        "properties": {
                            "text": {"type": "string"},
                            "start": {"type": "integer", "minimum": 0},
                            "end": {"type": "integer", "minimum": 0},
                        },
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rsuper.invalid/schemas/report-facts.schema.json",
        "title": f"R-Super report facts (schema {SCHEMA_VERSION})",
        "type": "object",
        "required": ["case_id", "tumours", "normal_organs"],
        "properties": {
            "case_id": {"type": "string", "minLength": 1},
            "tumours": {"type": "array", "items": tumour},
            "normal_organs": {"type": "array", "items": {"enum": list(ORGANS)}},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "extractor": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "model": {"type": ["string", "null"]},
                },
                "additionalProperties": False,
            },
            "schema_version": {"type": "string"},
        },
        "additionalProperties": False,
    }


def llm_output_schema() -> dict[str, Any]:
    """JSON Schema of a language model's answer for one report."""
    tumour = {
        "type": "object",
        "required": ["organ", "diameters_mm", "count", "evidence"],
        "properties": {
            **_tumour_properties(),
            "evidence": {
                "type": "string",
                "description": "The report sentence this tumour comes from, copied verbatim.",
            },
        },
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["tumours", "normal_organs"],
        "properties": {
            "tumours": {"type": "array", "items": tumour},
            "normal_organs": {"type": "array", "items": {"enum": list(ORGANS)}},
        },
        "additionalProperties": False,
    }
