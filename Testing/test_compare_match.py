"""AI-vs-report matching (rsuper.compare.match): every flag from a deliberate case, none from an agreeing one."""

import pytest

from rsuper.compare.match import (
    AGREES, AI_ONLY, NORMAL_ORGAN, NOT_ASSESSED, REPORT_ONLY, SIZE_DIFFERS, CaseComparison, CompareOptions,
    compare_case,
)
from rsuper.infer.records import TumourRecord
from rsuper.report.schema import Evidence, ReportFacts, Tumour

ASSESSED = ("liver", "pancreas", "kidney")


def ai(id_, organ, long_mm, short_mm=None, cc_mm=None, subsegments=None):
    short_mm = long_mm * 0.8 if short_mm is None else short_mm
    cc_mm = long_mm * 0.7 if cc_mm is None else cc_mm
    subsegments = subsegments or {}
    sub = max(subsegments, key=subsegments.get) if subsegments else None
    return TumourRecord(id_, None, organ, sub, subsegments, None, 100, 1.0, long_mm, short_mm, cc_mm,
                        [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])


def facts(*tumours, normal=()):
    return ReportFacts("case", list(tumours), list(normal))


def flags(comparison):
    return sorted(f.flag for f in comparison.findings)


def test_agreeing_case_has_no_disagreement():
    result = compare_case([ai(1, "pancreas", 21.0, subsegments={"head": 1.0})],
                          facts(Tumour("pancreas", "head", [20.0, 15.0])), ASSESSED)
    assert flags(result) == [AGREES] and result.status == "agrees" and result.severity == 0.0
    finding = result.findings[0]
    assert (finding.ai_id, finding.report_index, finding.difference_mm) == (1, 0, pytest.approx(1.0))


@pytest.mark.parametrize("reported, measured, expected", [
    (20.0, 25.9, AGREES), (20.0, 26.1, SIZE_DIFFERS), (20.0, 14.1, AGREES), (20.0, 13.9, SIZE_DIFFERS),
    (8.0, 12.9, AGREES), (8.0, 13.1, SIZE_DIFFERS),  # the 5 mm floor of the tolerance
    (60.0, 77.9, AGREES), (60.0, 78.1, SIZE_DIFFERS),  # 30 % of 60 mm = 18 mm
])
def test_size_tolerance_is_30_percent_or_5_mm(reported, measured, expected):
    result = compare_case([ai(1, "liver", measured, 1.0, 1.0)], facts(Tumour("liver", None, [reported])), ASSESSED)
    assert flags(result) == [expected]
    assert result.findings[0].tolerance_mm == pytest.approx(max(0.3 * reported, 5.0))


def test_custom_tolerance():
    result = compare_case([ai(1, "liver", 23.0, 1.0, 1.0)], facts(Tumour("liver", None, [20.0])), ASSESSED,
                          CompareOptions(size_tolerance_fraction=0.1, size_tolerance_mm=2.0))
    assert flags(result) == [SIZE_DIFFERS]


def test_ai_only_and_report_only():
    result = compare_case([ai(1, "liver", 15.0)], facts(Tumour("pancreas", "tail", [25.0])), ASSESSED)
    assert flags(result) == [AI_ONLY, REPORT_ONLY]
    missed = next(f for f in result.findings if f.flag == REPORT_ONLY)
    assert missed.organ == "pancreas" and missed.subsegment == "tail" and missed.ai_id is None


def test_organ_reported_normal_but_ai_finds_a_tumour():
    result = compare_case([ai(1, "kidney_left", 12.0)], facts(normal=["kidney"]), ASSESSED)
    assert flags(result) == [NORMAL_ORGAN]
    assert result.normal_organs == ["kidney_left", "kidney_right"]
    # only the right kidney called normal: a left kidney tumour is simply not in the report
    assert flags(compare_case([ai(1, "kidney_left", 12.0)], facts(normal=["kidney_right"]), ASSESSED)) == [AI_ONLY]
    # an AI tumour of unknown side counts as "normal organ" only when both sides are called normal
    assert flags(compare_case([ai(1, "kidney", 12.0)], facts(normal=["kidney_left"]), ASSESSED)) == [AI_ONLY]


def test_report_tumour_in_an_organ_the_model_does_not_see_is_not_assessed():
    result = compare_case([], facts(Tumour("spleen", None, [30.0])), ASSESSED)
    assert flags(result) == [NOT_ASSESSED] and result.status == "agrees"


def test_optimal_assignment_pairs_by_size_not_by_order():
    records = [ai(1, "liver", 30.0, 1, 1), ai(2, "liver", 10.0, 1, 1)]
    result = compare_case(records, facts(Tumour("liver", None, [11.0]), Tumour("liver", None, [29.0])), ASSESSED)
    assert flags(result) == [AGREES, AGREES]
    assert {f.ai_id: f.report_index for f in result.findings} == {1: 1, 2: 0}


def test_subsegment_given_by_the_report_must_hold_part_of_the_ai_tumour():
    report = facts(Tumour("pancreas", "head", [20.0]))
    in_tail = compare_case([ai(1, "pancreas", 20.0, subsegments={"tail": 1.0})], report, ASSESSED)
    assert flags(in_tail) == [AI_ONLY, REPORT_ONLY]
    straddling = compare_case([ai(1, "pancreas", 20.0, subsegments={"body": 0.7, "head": 0.3})], report, ASSESSED)
    assert flags(straddling) == [AGREES]
    neck = compare_case([ai(1, "pancreas", 20.0, subsegments={"head": 1.0})],
                        facts(Tumour("pancreas", "neck", [20.0])), ASSESSED)  # neck counts as head
    assert flags(neck) == [AGREES]
    no_parts = compare_case([ai(1, "kidney_left", 20.0)], facts(Tumour("kidney_left", "upper_pole", [20.0])),
                            ASSESSED)  # the organ mask has no kidney poles: any place fits
    assert flags(no_parts) == [AGREES]


def test_sub_segment_preference_among_same_sized_tumours():
    records = [ai(1, "pancreas", 20.0, subsegments={"head": 0.6, "body": 0.4}),
               ai(2, "pancreas", 20.0, subsegments={"head": 0.1, "body": 0.9})]
    result = compare_case(records, facts(Tumour("pancreas", "body", [20.0]), Tumour("pancreas", "head", [20.0])),
                          ASSESSED)
    assert {f.ai_id: f.report_index for f in result.findings} == {1: 1, 2: 0}


def test_sides_must_agree():
    result = compare_case([ai(1, "kidney_left", 20.0)], facts(Tumour("kidney_right", None, [20.0])), ASSESSED)
    assert flags(result) == [AI_ONLY, REPORT_ONLY]
    unsided = compare_case([ai(1, "kidney_left", 20.0)], facts(Tumour("kidney", None, [20.0])), ASSESSED)
    assert flags(unsided) == [AGREES]


def test_groups_of_tumours():
    three = Tumour("liver", None, [15.0], count=3)
    result = compare_case([ai(1, "liver", 15.0), ai(2, "liver", 8.0), ai(3, "liver", 5.0)], facts(three), ASSESSED)
    assert flags(result) == [AGREES] * 3
    assert sorted(f.report_member for f in result.findings) == [0, 1, 2]
    one_found = compare_case([ai(1, "liver", 15.0)], facts(three), ASSESSED)
    assert flags(one_found) == [AGREES, REPORT_ONLY, REPORT_ONLY]
    too_big = compare_case([ai(1, "liver", 15.0), ai(2, "liver", 40.0)], facts(Tumour("liver", None, [15.0], count=2)),
                           ASSESSED)
    assert flags(too_big) == [AGREES, SIZE_DIFFERS]  # a member larger than the group's largest


def test_open_count_absorbs_further_tumours():
    multiple = Tumour("liver", None, [20.0], count=2, count_is_lower_bound=True)
    records = [ai(i, "liver", size) for i, size in enumerate((20.0, 12.0, 9.0, 6.0), start=1)]
    assert flags(compare_case(records, facts(multiple), ASSESSED)) == [AGREES] * 4
    closed = Tumour("liver", None, [20.0], count=2)
    assert flags(compare_case(records, facts(closed), ASSESSED)) == [AGREES, AGREES, AI_ONLY, AI_ONLY]


def test_unknown_size_matches_any_size():
    result = compare_case([ai(1, "liver", 50.0)], facts(Tumour("liver", "segment_7", [])), ASSESSED)
    assert flags(result) == [AGREES] and result.findings[0].difference_mm is None


def test_severity_orders_disagreements():
    records = [ai(1, "liver", 12.0), ai(2, "pancreas", 40.0, subsegments={"head": 1.0}), ai(3, "kidney_left", 30.0)]
    report = facts(Tumour("pancreas", "head", [20.0]), Tumour("kidney_right", None, [25.0]),
                   Tumour("spleen", None, [10.0]), normal=["liver"])
    result = compare_case(records, report, ASSESSED)
    order = [f.flag for f in result.disagreements]
    assert order[:2] in ([REPORT_ONLY, NORMAL_ORGAN], [NORMAL_ORGAN, REPORT_ONLY])
    assert order[2:] == [AI_ONLY, SIZE_DIFFERS]
    assert result.severity == max(f.severity for f in result.findings) >= 3.0
    counts = result.counts()
    assert counts[NOT_ASSESSED] == 1 and sum(counts.values()) == len(result.findings) == 5


def test_evidence_travels_with_the_finding_and_json_round_trips():
    tumour = Tumour("liver", None, [20.0], evidence=Evidence("A 2 cm liver lesion.", 10, 30))
    result = compare_case([ai(1, "liver", 21.0)], facts(tumour), ASSESSED)
    assert result.findings[0].evidence == {"text": "A 2 cm liver lesion.", "start": 10, "end": 30}
    again = CaseComparison.from_dict(result.to_dict())
    assert again.to_dict() == result.to_dict()


def test_ai_tumour_organs_count_as_assessed():
    result = compare_case([ai(1, "spleen", 30.0)], facts(Tumour("spleen", None, [31.0])), ASSESSED)
    assert flags(result) == [AGREES] and "spleen" in result.assessed_organs
