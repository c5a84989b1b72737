"""Language-model answer parsing, validation and the hallucination check, on hand-written answers."""

from __future__ import annotations

import json
import re

import pytest

from rsuper.report.json_schema import llm_output_schema
from rsuper.report.llm_parse import (
    InvalidModelOutput,
    find_json_object,
    locate_evidence,
    parse_model_output,
    to_report_facts,
    validate_output,
)
from rsuper.report.prompting import build_messages, load_template, render_user_prompt, retry_messages, schema_text
from rsuper.report.schema import ORGANS, SUBSEGMENTS, ExtractorInfo, ReportFacts, validate_facts

INFO = ExtractorInfo("test", "0", "hand-written")


def tumour(organ: str, diameters: list[float], evidence: str, count: int = 1, **extra) -> dict:
    """One tumour of an answer, as a model would write it."""
    return {"organ": organ, "diameters_mm": diameters, "count": count, "evidence": evidence, **extra}


def facts_of(answer: dict, report: str) -> ReportFacts:
    return parse_model_output(json.dumps(answer), "case-1", report, INFO)


# ------------------------------------------------------------ finding JSON
def test_json_is_found_inside_code_fences_and_chatter():
    raw = 'Sure! Here is {the} answer:\n```json\n{"tumours": [], "normal_organs": ["spleen"]}\n```\nHope it helps {'
    assert find_json_object(raw) == {"tumours": [], "normal_organs": ["spleen"]}


@pytest.mark.parametrize(
    "raw",
    [
        '{"tumours": [{"organ": "liv',
        '{"tumours": [{"organ": "liver", "diameters_mm": [], "count": 1, "evidence": "x"}, {"organ"',
        '{\n  "tumours": [\n    {"organ": "liver", "diameters_mm": [], "count": 1, "evidence": "x"},\n    {',
    ],
)
def test_a_cut_off_answer_is_rejected_not_read_from_a_nested_object(raw):
    with pytest.raises(InvalidModelOutput, match=r"not valid JSON.*ends before the JSON is complete"):
        find_json_object(raw)


def test_missing_or_broken_json_is_rejected_with_a_reason():
    with pytest.raises(InvalidModelOutput, match="not valid JSON: Expecting property name"):
        find_json_object('{"tumours": [], normal_organs: []}')
    with pytest.raises(InvalidModelOutput, match="no JSON object"):
        find_json_object("I cannot answer that.")


# ------------------------------------------------------------ schema validation
def test_every_schema_violation_is_listed_with_its_path():
    answer = {
        "tumours": [{"organ": "hepar", "diameters_mm": [-3], "count": 1}],
        "normal_organs": ["spleen"],
        "comment": "extra",
    }
    with pytest.raises(InvalidModelOutput) as info:
        validate_output(answer)
    joined = "\n".join(info.value.violations)
    assert "tumours/0/organ" in joined and "'hepar'" in joined
    assert "tumours/0/diameters_mm/0" in joined
    assert "'evidence' is a required property" in joined
    assert "<root>: Additional properties are not allowed ('comment'" in joined
    assert len(info.value.violations) == 4


def test_a_valid_answer_passes_validation_unchanged():
    answer = {"tumours": [tumour("pancreas", [12], "Cyst.", subsegment="head/body")], "normal_organs": []}
    assert validate_output(answer) is answer


# ------------------------------------------------------------ conversion
def test_diameters_sorted_and_evidence_span_located_exactly():
    report = "FINDINGS: Liver: A 1.2 x 2.3 cm hypodense lesion in segment 7. Spleen is normal."
    sentence = "A 1.2 x 2.3 cm hypodense lesion in segment 7."
    answer = {
        "tumours": [tumour("liver", [12, 23], sentence, subsegment="segment_7", attenuation="hypo")],
        "normal_organs": ["spleen"],
    }
    facts = facts_of(answer, report)
    (t,) = facts.tumours
    assert t.diameters_mm == [23.0, 12.0]
    assert t.subsegment == "segment_7" and t.attenuation == "hypo"
    assert report[t.evidence.start:t.evidence.end] == t.evidence.text == sentence
    assert facts.normal_organs == ["spleen"]
    assert facts.warnings == []
    assert facts.extractor == INFO
    validate_facts(facts, report)


def test_evidence_found_ignoring_case_and_whitespace_keeps_the_report_spelling():
    report = "Pancreas:  A 15 mm CYST in the\n   pancreatic tail. No duct dilation."
    evidence = locate_evidence("a 15 mm cyst in the pancreatic tail.", report)
    assert evidence is not None
    assert evidence.text == "A 15 mm CYST in the\n   pancreatic tail."
    assert report[evidence.start:evidence.end] == evidence.text


def test_evidence_not_in_report_gives_none_and_a_warning():
    report = "Kidneys: 8 mm cyst in the left kidney."
    answer = {"tumours": [tumour("kidney_left", [8], "A small renal cyst is present.")], "normal_organs": []}
    facts = facts_of(answer, report)
    assert facts.tumours[0].evidence is None
    assert any("evidence sentence not found" in w for w in facts.warnings)


def test_subsegment_of_another_organ_is_removed_with_a_warning():
    report = "A 2 cm lesion in the liver."
    answer = {"tumours": [tumour("liver", [20], "A 2 cm lesion in the liver.", subsegment="head")], "normal_organs": []}
    facts = facts_of(answer, report)
    assert facts.tumours[0].subsegment is None
    assert any("subsegment" in w and "'head'" in w for w in facts.warnings)


# ------------------------------------------------------------ hallucination check
@pytest.mark.parametrize(
    ("written", "answered"),
    [("2.3 cm", 23), ("23 mm", 23), ("2.0 cm", 20), ("2 cm", 20.0), ("7 mm", 7.0), ("0.5 cm", 5)],
)
def test_diameters_written_in_mm_or_cm_are_kept(written, answered):
    report = f"There is a {written} lesion in the spleen."
    answer = {"tumours": [tumour("spleen", [answered], report)], "normal_organs": []}
    facts = facts_of(answer, report)
    assert [t.diameters_mm for t in facts.tumours] == [[float(answered)]]
    assert facts.warnings == []


def test_a_diameter_not_written_in_the_report_drops_the_tumour_and_names_the_number():
    report = "Liver: 2.3 cm lesion in segment 4. Right kidney: 11 mm cyst."
    answer = {
        "tumours": [
            tumour("liver", [24], "Liver: 2.3 cm lesion in segment 4."),
            tumour("kidney_right", [11], "Right kidney: 11 mm cyst."),
        ],
        "normal_organs": [],
    }
    facts = facts_of(answer, report)
    assert [t.organ for t in facts.tumours] == ["kidney_right"]
    (warning,) = facts.warnings
    assert "liver" in warning and "diameter 24 mm" in warning


def test_counts_must_be_written_in_digits_or_words_unless_lower_bound():
    report = "Liver: three cysts, the largest 12 mm. Kidneys: 2 cysts of 5 mm. Spleen: multiple small lesions."
    answer = {
        "tumours": [
            tumour("liver", [12], "Liver: three cysts, the largest 12 mm.", count=3),
            tumour("kidney", [5], "Kidneys: 2 cysts of 5 mm.", count=2),
            tumour("spleen", [], "Spleen: multiple small lesions.", count=2, count_is_lower_bound=True),
            tumour("pancreas", [], "Spleen: multiple small lesions.", count=4),
        ],
        "normal_organs": [],
    }
    facts = facts_of(answer, report)
    assert [(t.organ, t.count) for t in facts.tumours] == [("liver", 3), ("kidney", 2), ("spleen", 2)]
    (warning,) = facts.warnings
    assert "pancreas" in warning and "count 4" in warning


def test_a_count_is_not_supported_by_a_size_digit():
    report = "Liver: cysts measuring 4.5 cm."
    answer = {"tumours": [tumour("liver", [45], report, count=4)], "normal_organs": []}
    facts = facts_of(answer, report)
    assert facts.tumours == []
    assert "count 4" in facts.warnings[0]


# ------------------------------------------------------------ normal organs
def test_normal_organ_with_a_tumour_is_dropped_sides_included():
    report = "Left kidney: 9 mm cyst. Kidneys otherwise normal. Spleen normal."
    answer = {
        "tumours": [tumour("kidney_left", [9], "Left kidney: 9 mm cyst.")],
        "normal_organs": ["kidney", "spleen", "spleen", "kidney_right"],
    }
    facts = facts_of(answer, report)
    assert facts.normal_organs == ["spleen", "kidney_right"]
    assert any("normal organ 'kidney' dropped" in w for w in facts.warnings)


def test_normal_organ_kept_when_its_only_tumour_was_dropped():
    report = "Spleen is unremarkable."
    answer = {"tumours": [tumour("spleen", [30], "Spleen is unremarkable.")], "normal_organs": ["spleen"]}
    facts = facts_of(answer, report)
    assert facts.tumours == [] and facts.normal_organs == ["spleen"]


def test_facts_round_trip_through_the_facts_record():
    report = "Pancreas: 3.1 x 2.4 cm hypoenhancing mass in the head, concerning for adenocarcinoma."
    answer = {
        "tumours": [tumour("pancreas", [24, 31], report, subsegment="head", malignancy="suspicious")],
        "normal_organs": ["liver"],
    }
    facts = facts_of(answer, report)
    again = ReportFacts.from_dict(json.loads(facts.to_json()))
    assert again == facts


def test_to_report_facts_accepts_the_decoded_answer():
    report = "Gallbladder: 6 mm polyp."
    data = {"tumours": [tumour("gallbladder", [6], "Gallbladder: 6 mm polyp.")], "normal_organs": []}
    assert to_report_facts(data, "c", report, INFO).tumours[0].evidence.start == 0


# ------------------------------------------------------------ prompts
def test_user_prompt_fills_report_and_schema_once():
    report = "Liver: 2 cm cyst. A literal {schema} stays as written."
    prompt = render_user_prompt(report)
    assert report in prompt
    assert prompt.count(schema_text()) == 1
    assert "{report}" not in prompt
    assert json.loads(schema_text()) == llm_output_schema()


def test_messages_come_from_the_template_files():
    messages = build_messages("Spleen: normal.")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == load_template("system.txt").strip()
    retry = retry_messages("Spleen: normal.", '{"tumours": [', "the answer is not valid JSON")
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == '{"tumours": ['
    assert "the answer is not valid JSON" in retry[3]["content"]


def test_prompt_names_the_whole_vocabulary():
    template = load_template("user.txt")
    for organ in ORGANS:
        assert re.search(rf"\b{organ}\b", template), organ
    for names in SUBSEGMENTS.values():
        for name in names:
            if not name.startswith("segment_"):
                assert name in template, name


def test_worked_example_in_the_prompt_passes_every_check():
    template = load_template("user.txt")
    example = template.split("EXAMPLE", 1)[1]
    report = example.split("Report:\n", 1)[1].split("\nAnswer:\n", 1)[0]
    answer = example.split("\nAnswer:\n", 1)[1].split("\n", 1)[0]
    facts = parse_model_output(answer, "example", report, INFO)
    assert facts.warnings == []
    assert len(facts.tumours) == len(json.loads(answer)["tumours"]) == 3
