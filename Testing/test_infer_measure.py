"""Tumour measurements (rsuper.infer.recist, rsuper.infer.records, postprocess.instances_above, grid)."""

import math

import numpy as np
import pytest
from infer_helpers import ellipsoid
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS as LM
from rsuper.infer.grid import CanonicalGrid
from rsuper.infer.postprocess import instances, instances_above, remove_small_components
from rsuper.infer.recist import recist_diameters
from rsuper.infer.records import OrganLookup, TumourRecord, measure_tumours


@pytest.mark.parametrize(
    "spacing, diameters, angle",
    [
        ((0.7, 0.7, 2.5), (30.0, 18.0, 20.0), 0.0),
        ((0.7, 0.7, 2.5), (30.0, 18.0, 20.0), 0.45),
        ((0.8, 0.8, 5.0), (24.0, 10.0, 35.0), math.pi / 4),  # cranio-caudal larger than the axial ones
        ((1.2, 0.9, 3.0), (16.0, 12.0, 9.0), 1.2),  # non-square pixels
    ],
)
def test_recist_diameters_of_ellipsoids_within_a_voxel(spacing, diameters, angle):
    shape = tuple(int(math.ceil(max(diameters) / s)) + 8 for s in spacing)
    # the centre lies on a slice, so that the largest axial section is sampled
    centre = ((shape[0] - 1) / 2 + 0.3, (shape[1] - 1) / 2 - 0.2, shape[2] // 2)
    mask = ellipsoid(shape, spacing, centre, diameters, angle)
    result = recist_diameters(np.argwhere(mask), spacing)
    pixel = max(spacing[:2])
    assert abs(result.long_axis_mm - diameters[0]) <= pixel
    assert abs(result.short_axis_mm - diameters[1]) <= pixel
    assert abs(result.craniocaudal_mm - diameters[2]) <= spacing[2]
    assert abs(result.axial_slice - centre[2]) <= 1


def test_recist_of_a_single_voxel_and_a_line():
    one = recist_diameters(np.array([[3, 4, 5]]), (0.8, 0.9, 3.0))
    assert (one.long_axis_mm, one.short_axis_mm, one.craniocaudal_mm) == pytest.approx((0.8, 0.9, 3.0))
    line = recist_diameters(np.array([[2, j, 1] for j in range(10)]), (1.0, 0.5, 2.0))  # collinear: no hull
    assert line.long_axis_mm == pytest.approx(5.0) and line.short_axis_mm == pytest.approx(1.0)
    with pytest.raises(ValueError):
        recist_diameters(np.zeros((0, 3), int), (1.0, 1.0, 1.0))


def _reoriented(array, affine, codes):
    ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes)))
    return np.ascontiguousarray(apply_orientation(array, ornt)), affine @ inv_ornt_aff(ornt, array.shape)


def test_axial_means_the_patients_axial_plane_whatever_the_array_order():
    spacing = (1.0, 1.0, 2.0)
    shape = (30, 30, 30)
    tube = ellipsoid(shape, spacing, (14.5, 15.0, 15.0), (10.0, 10.0, 44.0)).astype(np.uint8)  # long along S
    affine = np.diag([*spacing, 1.0])
    for codes in ("RAS", "SPL", "ILP"):
        labels, aff = _reoriented(tube, affine, codes)
        grid = CanonicalGrid.of(labels.shape, aff)
        (record,) = measure_tumours(grid.to_ras(labels), grid)
        assert abs(record.craniocaudal_mm - 44.0) <= 2.0, codes
        assert abs(record.long_axis_mm - 10.0) <= 1.0 and abs(record.short_axis_mm - 10.0) <= 1.0, codes
        centroid = np.argwhere(labels).mean(axis=0)
        np.testing.assert_allclose(record.centroid_voxel, centroid, atol=1e-9)
        np.testing.assert_allclose(record.centroid_mm, aff[:3, :3] @ centroid + aff[:3, 3], atol=1e-9)
        assert record.volume_ml == pytest.approx(tube.sum() * 2.0 / 1000.0)


def _organ_case():
    organs = np.zeros((40, 30, 20), np.uint8)
    organs[5:20, 5:25, 2:18] = LM.label_of("pancreas_head")
    organs[20:35, 5:25, 2:18] = LM.label_of("pancreas_body")
    organs[:, 25:30, 2:18] = LM.label_of("kidney_left")
    return organs


def test_organ_and_subsegment_shares_from_the_organ_mask():
    organs = _organ_case()
    grid = CanonicalGrid.of(organs.shape, np.eye(4))
    labels = np.zeros_like(organs, dtype=np.uint16)
    labels[14:24, 10:15, 8:12] = 1  # 6 rows in the head, 4 in the body
    labels[30:34, 21:27, 8:10] = 2  # 4 columns in the pancreas body, 2 in the kidney
    lookup = OrganLookup(organs, LM)
    first, second = measure_tumours(labels, grid, organs=lookup)
    assert (first.organ, first.subsegment, first.organ_label) == ("pancreas", "head", "pancreas_head")
    assert first.subsegments == pytest.approx({"head": 0.6, "body": 0.4})
    assert (second.organ, second.subsegment) == ("pancreas", "body")  # the majority
    # found by the kidney-lesion channel: the kidney, though it holds the smaller part
    (kidney,) = measure_tumours(np.where(labels == 2, 2, 0).astype(np.uint16), grid, organs=lookup,
                                channels={2: "kidney_lesion"}, channel_organs={2: "kidney"})
    assert (kidney.organ, kidney.subsegment, kidney.channel) == ("kidney_left", None, "kidney_lesion")


def test_organ_from_the_neighbourhood_when_no_label_lies_under_the_tumour():
    organs = _organ_case()
    organs[8:12, 8:12, 8:12] = 0  # the organ mask leaves the tumour out
    labels = np.zeros_like(organs, dtype=np.uint16)
    labels[8:12, 8:12, 8:12] = 1
    grid = CanonicalGrid.of(organs.shape, np.diag([1.0, 1.0, 1.0, 1.0]))
    (record,) = measure_tumours(labels, grid, organs=OrganLookup(organs, LM, margin_mm=2.0))
    assert (record.organ, record.subsegment) == ("pancreas", "head")
    assert record.subsegments == {"head": pytest.approx(1.0)}  # shares of the labelled shell around it
    (far,) = measure_tumours(labels, grid, organs=OrganLookup(organs, LM, margin_mm=0.0),
                             channel_organs={1: "liver"})
    assert (far.organ, far.subsegment, far.organ_label) == ("liver", None, None)  # falls back to the channel's


def test_mean_hu_and_max_probability_are_taken_inside_the_tumour():
    labels = np.zeros((10, 10, 10), np.uint16)
    labels[2:5, 2:5, 2:5] = 1
    hu = np.full(labels.shape, -50.0, np.float32)
    hu[labels == 1] = np.arange(27, dtype=np.float32)
    prob = np.full(labels.shape, 0.99, np.float32)  # higher outside: must not count
    prob[labels == 1] = np.linspace(0.5, 0.8, 27)
    (record,) = measure_tumours(labels, CanonicalGrid.of(labels.shape, np.eye(4)), hu_ras=hu, probability_ras=prob)
    assert record.mean_hu == pytest.approx(13.0) and record.max_probability == pytest.approx(0.8)


def test_record_json_round_trip():
    record = TumourRecord(3, "liver_lesion", "liver", "segment_7", {"segment_7": 0.8123456}, "liver_segment_7", 10,
                          0.0123456, 20.123, 10.456, 7.5, [1.0, 2.0, 3.0], [-1.0, 2.5, 3.25], 41.26, 0.987654)
    data = record.to_dict()
    assert data["volume_ml"] == 0.012 and data["long_axis_mm"] == 20.12 and data["max_probability"] == 0.9877
    again = TumourRecord.from_dict({**data, "unknown_key": 1})
    assert again.to_dict() == data and again.diameters_mm == [20.12, 10.46, 7.5]


def test_instances_above_equals_filter_then_label():
    rng = np.random.default_rng(0)
    mask = rng.random((30, 30, 30)) > 0.93
    spacing = (0.8, 0.8, 2.0)
    labels, n = instances_above(mask, 5.0, spacing)
    expected, m = instances(remove_small_components(mask, 5.0, spacing))
    assert labels.dtype == np.uint16 and n == m > 0 and np.array_equal(labels, expected)
