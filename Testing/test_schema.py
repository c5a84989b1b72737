"""Facts schema: validation, JSON round trip, and the shipped JSON Schema file."""

import json
from pathlib import Path

import jsonschema
import pytest

from rsuper.report.command_schema import render
from rsuper.report.json_schema import facts_json_schema
from rsuper.report.schema import Evidence, ExtractorInfo, FactsError, ReportFacts, Tumour, validate_facts

ROOT = Path(__file__).resolve().parents[1]
TEXT = "A 2.3 x 1.9 cm mass in the pancreatic head. The spleen is normal."


def _facts() -> ReportFacts:
    return ReportFacts(
        case_id="c1",
        tumours=[
            Tumour("pancreas", "head", [23.0, 19.0], 1, False, "hypo", "suspicious", Evidence(TEXT[:43], 0, 43)),
            Tumour("liver", "segment_5/segment_6", [], 2, True),
        ],
        normal_organs=["spleen"],
        extractor=ExtractorInfo("rules", "1.0"),
    )


def test_json_round_trip_is_lossless_and_valid():
    f = _facts()
    data = json.loads(f.to_json())
    jsonschema.validate(data, facts_json_schema())
    assert ReportFacts.from_dict(data) == f


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: setattr(t, "organ", "heart"), "vocabulary"),
        (lambda t: setattr(t, "subsegment", "tail/segment_3"), "not valid for organ"),
        (lambda t: setattr(t, "diameters_mm", [10.0, 20.0]), "largest first"),
        (lambda t: setattr(t, "diameters_mm", [0.0]), "outside"),
        (lambda t: setattr(t, "diameters_mm", [5.0, 4.0, 3.0, 2.0]), "at most 3"),
        (lambda t: setattr(t, "count", 0), "count"),
        (lambda t: setattr(t, "attenuation", "dark"), "attenuation"),
        (lambda t: setattr(t, "malignancy", "bad"), "malignancy"),
        (lambda t: setattr(t, "evidence", Evidence("wrong words", 0, 11)), "does not match"),
    ],
)
def test_invalid_tumours_are_rejected_with_the_field_named(change, message):
    f = _facts()
    change(f.tumours[0])
    with pytest.raises(FactsError, match=message):
        validate_facts(f, TEXT)


def test_json_schema_rejects_what_validation_rejects():
    data = _facts().to_dict()
    data["tumours"][0]["organ"] = "heart"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, facts_json_schema())


def test_shipped_schema_file_is_up_to_date():
    shipped = (ROOT / "Resources" / "report-facts.schema.json").read_text(encoding="utf-8")
    assert shipped == render(), "run: rsuper schema --out Resources/report-facts.schema.json"


def test_volume_from_diameters():
    import math

    assert Tumour("liver", diameters_mm=[20.0]).volume_mm3() == pytest.approx(math.pi / 6 * 8000)
    assert Tumour("liver", diameters_mm=[30.0, 20.0]).volume_mm3() == pytest.approx(math.pi / 6 * 30 * 20 * 25)
    assert Tumour("liver").volume_mm3() is None
