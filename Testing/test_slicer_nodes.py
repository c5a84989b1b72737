"""RSuperLib.Nodes on real MRML classes (the slicer-core wheel): arrays, affines, segmentations, facts, markups."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):  # the unrelated PyPI package "slicer", not 3D Slicer's MRML
    pytest.skip("slicer-core (MRML classes) is not installed", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "RSuper"))

from RSuperLib import Nodes  # noqa: E402

from compare_inputs import comparison_phantom  # noqa: E402

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS  # noqa: E402
from rsuper.compare.inputs import load_ai_tumours  # noqa: E402
from rsuper.compare.segments import TUMOUR_COLOURS, ai_tumour_label_map, segment_label_map  # noqa: E402
from rsuper.data.phantom import TumourSpec, make_phantom  # noqa: E402

# Voxel -> RAS: i runs toward the patient's left (a flip), j posterior (a flip), k superior; anisotropic spacing.
AFFINE = np.array([
    [-0.75, 0.0, 0.0, 120.5],
    [0.0, -0.9, 0.0, 80.25],
    [0.0, 0.0, 2.5, -300.0],
    [0.0, 0.0, 0.0, 1.0],
])


@pytest.fixture()
def scene():
    return slicer.vtkMRMLScene()


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(3, (56, 48, 28), (3.0, 3.0, 6.0), tumours=[TumourSpec("liver", "segment_6", 15.0)],
                        orientation="LPS", case_id="node_case")


def _random_volume(shape=(17, 11, 6), dtype=np.int16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1500, size=shape).astype(dtype)


def test_volume_round_trip_keeps_array_and_affine(scene):
    array = _random_volume()
    node = Nodes.arrayToVolumeNode(array, AFFINE, "ct", scene=scene)
    assert node.IsA("vtkMRMLScalarVolumeNode") and node.GetName() == "ct"
    assert node.GetImageData().GetDimensions() == array.shape  # VTK dimensions are (I, J, K)
    back, affine = Nodes.volumeNodeToArray(node)
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    np.testing.assert_allclose(affine, AFFINE, atol=1e-9)
    # Voxel (i, j, k) sits where the affine says, as Slicer computes it.
    np.testing.assert_allclose(node.GetOrigin(), AFFINE[:3, 3])
    np.testing.assert_allclose(node.GetSpacing(), [0.75, 0.9, 2.5])
    back[0, 0, 0] = 7  # a copy, not the node's memory
    assert Nodes.volumeNodeToArray(node)[0][0, 0, 0] == array[0, 0, 0]


def test_parent_transform_is_part_of_the_affine(scene):
    node = Nodes.arrayToVolumeNode(_random_volume(), AFFINE, "moved", scene=scene)
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -2.0, 10.0]
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    _, affine = Nodes.volumeNodeToArray(node)
    np.testing.assert_allclose(affine, shift @ AFFINE, atol=1e-9)


def test_written_volume_reads_back_in_nibabel_and_in_slicer(scene, tmp_path):
    array = _random_volume(dtype=np.int16, seed=3)
    node = Nodes.arrayToVolumeNode(array, AFFINE, "ct", scene=scene)
    path = tmp_path / "ct.nii.gz"
    Nodes.writeVolumeNode(node, path)
    image = nib.load(path)
    assert image.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(image.dataobj), array)
    np.testing.assert_allclose(image.affine, AFFINE, atol=1e-5)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    again = Nodes.readVolumeNode(path, scene=scene)
    assert again.GetName() == "ct" and again is not node
    back, affine = Nodes.volumeNodeToArray(again)
    np.testing.assert_array_equal(back, array)
    np.testing.assert_allclose(affine, AFFINE, atol=1e-5)


def test_phantom_ct_file_reads_as_rsuper_sees_it(scene, tmp_path, phantom):
    paths = phantom.save(tmp_path / "case")
    node = Nodes.readVolumeNode(paths["ct"], scene=scene)
    array, affine = Nodes.volumeNodeToArray(node)
    np.testing.assert_array_equal(array, phantom.ct)
    np.testing.assert_allclose(affine, phantom.affine, atol=1e-5)
    labels = Nodes.readVolumeNode(paths["organs"], scene=scene, className="vtkMRMLLabelMapVolumeNode")
    assert labels.IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(Nodes.volumeNodeToArray(labels)[0], phantom.organs)


def test_label_map_to_segmentation_and_back(scene, phantom):
    ct = Nodes.arrayToVolumeNode(phantom.ct, phantom.affine, "ct", scene=scene)
    segmentation = Nodes.labelMapToSegmentationNode(phantom.organs, phantom.affine, RSUPER_ORGAN_LABELS, "organs",
                                                    scene=scene, referenceVolumeNode=ct)
    assert segmentation.IsA("vtkMRMLSegmentationNode") and segmentation.GetName() == "organs"
    present = sorted(int(v) for v in np.unique(phantom.organs) if v)
    assert len(present) > 20
    seg = segmentation.GetSegmentation()
    found = {}
    for index in range(seg.GetNumberOfSegments()):
        segment = seg.GetNthSegment(index)
        found[segment.GetName()] = tuple(round(c * 255) for c in segment.GetColor())
    expected = {RSUPER_ORGAN_LABELS.name_of(v): RSUPER_ORGAN_LABELS.color_of(v) for v in present}
    assert found == expected
    # Only the scene's own nodes are left: no temporary label map or colour table.
    leftovers = [scene.GetNthNode(i).GetName() for i in range(scene.GetNumberOfNodes())]
    assert not [n for n in leftovers if n and n.startswith("__RSuper")], leftovers
    back = Nodes.segmentationNodeToLabelMap(segmentation, ct, RSUPER_ORGAN_LABELS)
    assert back.dtype == np.uint8 and back.shape == phantom.organs.shape
    np.testing.assert_array_equal(back, phantom.organs)


def test_segmentation_files_round_trip_on_the_reference_grid(scene, tmp_path, phantom):
    """An organ label file read as a segmentation and written back gives the same labels on the CT's grid and
    affine (a moved CT included), as rsuper reads them with nibabel."""
    paths = phantom.save(tmp_path / "case")
    ct = Nodes.readVolumeNode(paths["ct"], scene=scene)
    segmentation = Nodes.readSegmentationNode(paths["organs"], RSUPER_ORGAN_LABELS, "organs", scene=scene,
                                              referenceVolumeNode=ct)
    assert segmentation.GetName() == "organs"
    present = [int(v) for v in np.unique(phantom.organs) if v]
    assert segmentation.GetSegmentation().GetNumberOfSegments() == len(present)
    assert segmentation.GetSegmentation().GetSegmentIdBySegmentName(RSUPER_ORGAN_LABELS.name_of(present[-1]))
    Nodes.writeSegmentationNode(segmentation, ct, RSUPER_ORGAN_LABELS, tmp_path / "back.nii.gz")
    back = nib.load(tmp_path / "back.nii.gz")
    np.testing.assert_array_equal(np.asarray(back.dataobj), phantom.organs)
    np.testing.assert_allclose(back.affine, phantom.affine, atol=1e-5)
    np.testing.assert_allclose(Nodes.volumeAffine(ct), Nodes.volumeNodeToArray(ct)[1])
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = [4.0, 0.0, -6.0]
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    ct.SetAndObserveTransformNodeID(transform.GetID())
    np.testing.assert_allclose(Nodes.volumeAffine(ct), shift @ phantom.affine, atol=1e-5)


def test_label_values_outside_the_map_and_unknown_segment_names(scene):
    labels = np.zeros((12, 10, 8), np.uint8)
    labels[2:5, 2:5, 2:5] = RSUPER_ORGAN_LABELS.label_of("spleen")
    labels[7:10, 5:8, 3:6] = 200  # not in the map
    reference = Nodes.arrayToVolumeNode(np.zeros(labels.shape, np.int16), AFFINE, "ref", scene=scene)
    segmentation = Nodes.labelMapToSegmentationNode(labels, AFFINE, RSUPER_ORGAN_LABELS, "seg", scene=scene)
    names = sorted(segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(2))
    assert names == ["label_200", "spleen"]
    with pytest.raises(ValueError, match="label_200"):
        Nodes.segmentationNodeToLabelMap(segmentation, reference, RSUPER_ORGAN_LABELS)
    back = Nodes.segmentationNodeToLabelMap(segmentation, reference, RSUPER_ORGAN_LABELS, ignoreUnknown=True)
    np.testing.assert_array_equal(back, np.where(labels == 200, 0, labels))


def test_facts_round_trip_on_a_node(scene, phantom):
    node = Nodes.arrayToVolumeNode(phantom.ct, phantom.affine, "ct", scene=scene)
    assert Nodes.factsFromNode(node) is None
    Nodes.storeFacts(node, phantom.facts)
    stored = Nodes.factsFromNode(node)
    assert stored == phantom.facts.to_dict()
    assert stored["tumours"][0]["organ"] == "liver"
    Nodes.storeFacts(node, {"case_id": "x", "tumours": [], "normal_organs": ["spleen"]})
    assert Nodes.factsFromNode(node)["normal_organs"] == ["spleen"]
    Nodes.storeFacts(node, None)
    assert Nodes.factsFromNode(node) is None
    node.SetAttribute(Nodes.FACTS_ATTRIBUTE, "[1, 2]")
    with pytest.raises(ValueError):
        Nodes.factsFromNode(node)


def test_line_measurement_has_both_points_and_the_label(scene):
    p1, p2 = (10.0, -20.5, 33.0), (22.0, -4.5, 33.0)
    line = Nodes.addLineMeasurement(p1, p2, "AI tumour 2: 20 mm", scene=scene)
    assert line.IsA("vtkMRMLMarkupsLineNode") and line.GetName() == "AI tumour 2: 20 mm"
    assert line.GetNumberOfControlPoints() == 2
    for index, expected in enumerate((p1, p2)):
        point = [0.0, 0.0, 0.0]
        line.GetNthControlPointPositionWorld(index, point)
        np.testing.assert_allclose(point, expected)
    assert line.GetMeasurement("length").GetValue() == pytest.approx(np.linalg.norm(np.subtract(p2, p1)))


def test_no_scene_outside_slicer_is_a_clear_error():
    if hasattr(slicer, "mrmlScene"):
        pytest.skip("running inside the Slicer application")
    with pytest.raises(RuntimeError, match="mrmlScene"):
        Nodes.arrayToVolumeNode(np.zeros((2, 2, 2)), np.eye(4), "x")


def test_empty_segmentation_gives_background_on_the_reference_grid(scene):
    reference = Nodes.arrayToVolumeNode(np.zeros((9, 7, 5), np.int16), AFFINE, "ref", scene=scene)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    back = Nodes.segmentationNodeToLabelMap(segmentation, reference, RSUPER_ORGAN_LABELS)
    assert back.shape == (9, 7, 5) and back.dtype == np.uint8 and not back.any()


def test_ai_tumour_segments_and_back_to_instance_labels(scene, tmp_path):
    """What the R-Super module does with tumours: the instance labels + records shown as named, coloured segments
    (ai_tumour_label_map), then a segmentation, edited by deleting a segment, handed back as instance labels
    (segment_label_map) for rsuper compare: segment n is value n, on the CT's grid."""
    phantom, paths = comparison_phantom(tmp_path)
    records = [r.to_dict() for r in load_ai_tumours(paths["tumours"], paths["organs"]).records]
    assert len(records) == 3
    ct = Nodes.readVolumeNode(paths["ct"], scene=scene)
    label_map = ai_tumour_label_map(records)
    segmentation = Nodes.readSegmentationNode(paths["tumours"], label_map, "AI tumours", scene=scene,
                                              referenceVolumeNode=ct)
    seg = segmentation.GetSegmentation()
    shown = [(seg.GetNthSegment(i).GetName(), tuple(round(c * 255) for c in seg.GetNthSegment(i).GetColor()))
             for i in range(seg.GetNumberOfSegments())]
    assert shown == [(label_map.name_of(r["id"]), TUMOUR_COLOURS[i]) for i, r in enumerate(records)]
    assert [name.split(" (")[1].split()[0] for name, _ in shown] == ["pancreas", "liver", "kidney_left"]

    names = [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())]
    Nodes.writeSegmentationNode(segmentation, ct, segment_label_map(names), tmp_path / "all.nii.gz")
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "all.nii.gz").dataobj), phantom.tumours)

    seg.RemoveSegment(seg.GetSegmentIdBySegmentName(names[0]))  # the user deletes the pancreatic tumour
    names = [seg.GetNthSegment(i).GetName() for i in range(seg.GetNumberOfSegments())]
    Nodes.writeSegmentationNode(segmentation, ct, segment_label_map(names), tmp_path / "edited.nii.gz")
    expected = np.where(phantom.tumours > 1, phantom.tumours - 1, 0)  # 1 gone, 2 -> 1, 3 -> 2
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "edited.nii.gz").dataobj), expected)
