"""Numpy arrays <-> MRML nodes (volumes, segmentations, markups) in rsuper's NIfTI convention.

rsuper (and nibabel) index a volume ``array[i, j, k]`` and map voxel ``(i, j, k, 1)``
to world RAS+ mm with a 4x4 ``affine``; Slicer stores the voxels as
``(k, j, i)`` in ``vtkImageData`` and the same mapping as the node's
IJK-to-RAS matrix. The functions here convert between the two exactly (the
voxel order is transposed, the affine is the IJK-to-RAS matrix; a linear parent
transform of a node is applied). Slicer keeps spacing and axis directions, so
affines with shear cannot be represented.

Only MRML is needed: the functions work on any ``vtkMRMLScene`` (tests use
the ``slicer-core`` wheel without the application). ``scene=None`` means
``slicer.mrmlScene``, which exists inside the Slicer application only.
NIfTI files are read and written with nibabel, as everywhere in rsuper, so a
file written here reads back in rsuper with the same array and affine.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import slicer
import slicer.util
import vtk

#: Node attribute holding a case's report facts (JSON of ``ReportFacts.to_dict()``).
FACTS_ATTRIBUTE = "RSuper.Facts"

_SCALAR_CLASS = "vtkMRMLScalarVolumeNode"
_LABELMAP_CLASS = "vtkMRMLLabelMapVolumeNode"


def _scene(scene: Any = None) -> Any:
    """``scene``, or the application's scene; raises ``RuntimeError`` outside Slicer without a scene."""
    if scene is not None:
        return scene
    appScene = getattr(slicer, "mrmlScene", None)
    if appScene is None:
        raise RuntimeError("no MRML scene given and slicer.mrmlScene does not exist (not inside 3D Slicer)")
    return appScene


def _vtkMatrix(affine: Any) -> vtk.vtkMatrix4x4:
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    return slicer.util.vtkMatrixFromArray(affine)


def _toWorld(node: Any, affine: np.ndarray) -> np.ndarray:
    """``affine`` composed with the node's parent transform to world (linear transforms only)."""
    transformNode = node.GetParentTransformNode()
    if transformNode is None:
        return affine
    if not transformNode.IsTransformToWorldLinear():
        raise ValueError(f"{node.GetName()}: its transform is not linear; harden it first")
    toWorld = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToWorld(toWorld)
    return slicer.util.arrayFromVTKMatrix(toWorld) @ affine


def _voxelArray(array: Any) -> np.ndarray:
    """``array`` in a voxel type VTK renders (bool -> uint8; int64 -> int32 when the values fit)."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"expected a 3D array (I, J, K), got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.dtype.itemsize == 8:
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        for dtype in (np.int32, np.uint32):
            info = np.iinfo(dtype)
            if info.min <= low and high <= info.max:
                return array.astype(dtype)
        raise ValueError("64-bit integer voxels outside the 32-bit range are not supported by Slicer volumes")
    if array.dtype == np.float16:
        return array.astype(np.float32)
    return array


def volumeNodeToArray(volumeNode: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(array (I, J, K), affine (4, 4) IJK -> RAS mm)`` of a scalar or label map volume node.

    The array is a copy (changing it does not change the node); the affine includes a linear parent
    transform of the node.

    Raises:
        ValueError: the node has no voxels, or a non-linear transform.
    """
    if volumeNode.GetImageData() is None:
        raise ValueError(f"{volumeNode.GetName()}: the volume has no voxels")
    array = np.ascontiguousarray(slicer.util.arrayFromVolume(volumeNode).transpose(2, 1, 0))
    return array, volumeAffine(volumeNode)


def volumeAffine(volumeNode: Any) -> np.ndarray:
    """The (4, 4) IJK -> RAS mm affine of a volume node, a linear parent transform included (no voxels read)."""
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    return _toWorld(volumeNode, slicer.util.arrayFromVTKMatrix(ijkToRas))


def arrayToVolumeNode(array: Any, affine: Any, name: str, scene: Any = None,
                      className: str = _SCALAR_CLASS) -> Any:
    """A new volume node holding ``array`` (I, J, K) on the grid ``affine`` (IJK -> RAS mm).

    Args:
        array: voxel values (copied); booleans become uint8.
        affine: 4x4 voxel -> RAS mm (no shear).
        name: node name.
        scene: the MRML scene (default: Slicer's).
        className: ``vtkMRMLScalarVolumeNode`` (default) or ``vtkMRMLLabelMapVolumeNode``.
    """
    voxels = _voxelArray(array)
    matrix = _vtkMatrix(affine)
    node = _scene(scene).AddNewNodeByClass(className, name)
    node.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(voxels.transpose(2, 1, 0)))
    node.CreateDefaultDisplayNodes()
    return node


def _colorTable(scene: Any, labelMap: Any, extra: dict[int, str] | None = None) -> Any:
    """A user colour table node with the label map's names and colours (plus ``extra`` value -> name, grey)."""
    entries = {int(v): (n, labelMap.colors[v]) for v, n in labelMap.labels.items()}
    for value, name in (extra or {}).items():
        entries.setdefault(value, (name, (128, 128, 128)))
    table = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "__RSuperColors__")
    table.SetTypeToUser()
    table.SetNumberOfColors(max(entries) + 1)
    table.SetHideFromEditors(True)
    for value, (name, rgb) in entries.items():
        r, g, b = (c / 255.0 for c in rgb)
        table.SetColor(value, name, r, g, b, 0.0 if value == 0 else 1.0)
    return table


def _removeNodes(scene: Any, *nodes: Any) -> None:
    for node in nodes:
        if node is not None and node.GetScene() is not None:
            scene.RemoveNode(node)


def labelMapToSegmentationNode(labels: Any, affine: Any, labelMap: Any, name: str, scene: Any = None,
                               referenceVolumeNode: Any = None) -> Any:
    """A new segmentation node with one segment per label value present in ``labels`` (0 is background).

    Segment names and colours come from ``labelMap`` (an ``rsuper.anatomy.labels.LabelMap``); a value
    the map does not know becomes a grey segment named ``label_<value>``.

    Args:
        labels: integer label array (I, J, K).
        affine: its 4x4 voxel -> RAS mm.
        labelMap: names and colours of the values.
        name: node name.
        scene: the MRML scene (default: Slicer's).
        referenceVolumeNode: the volume whose grid the segmentation should use for editing (usually the CT).

    Raises:
        ValueError: not an integer array; import failed.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    scene = _scene(scene)
    present = {int(v) for v in np.unique(labels) if v > 0}
    unknown = {v: f"label_{v}" for v in present - set(labelMap.labels)}
    table = _colorTable(scene, labelMap, unknown)
    labelNode = displayNode = None
    try:
        labelNode = scene.AddNewNodeByClass(_LABELMAP_CLASS, "__RSuperLabels__")
        labelNode.SetIJKToRASMatrix(_vtkMatrix(affine))
        slicer.util.updateVolumeFromArray(labelNode, np.ascontiguousarray(_voxelArray(labels).transpose(2, 1, 0)))
        displayNode = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeDisplayNode")
        displayNode.SetAndObserveColorNodeID(table.GetID())
        labelNode.SetAndObserveDisplayNodeID(displayNode.GetID())
        segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        segmentationNode.CreateDefaultDisplayNodes()
        if referenceVolumeNode is not None:
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelNode, segmentationNode):
            scene.RemoveNode(segmentationNode)
            raise ValueError(f"{name}: the label map could not be imported into a segmentation")
    finally:
        _removeNodes(scene, labelNode, displayNode, table)
    return segmentationNode


def segmentationNodeToLabelMap(segmentationNode: Any, referenceVolumeNode: Any, labelMap: Any,
                               ignoreUnknown: bool = False) -> np.ndarray:
    """Label array (I, J, K) on ``referenceVolumeNode``'s grid: each segment gets its name's value in ``labelMap``.

    Args:
        segmentationNode: the segmentation (e.g. from :func:`labelMapToSegmentationNode`, maybe edited).
        referenceVolumeNode: the volume whose grid (shape, affine) the array takes.
        labelMap: ``rsuper.anatomy.labels.LabelMap`` naming the values.
        ignoreUnknown: leave out segments whose name the map lacks (default: raise).

    Returns:
        uint8 labels (uint16 when the map has values above 255); 0 where no segment is.

    Raises:
        ValueError: a segment name the map does not know (unless ``ignoreUnknown``); export failed.
    """
    scene = segmentationNode.GetScene() or _scene(None)
    segmentation = segmentationNode.GetSegmentation()
    ids, unknown = vtk.vtkStringArray(), []
    for index in range(segmentation.GetNumberOfSegments()):
        segmentName = segmentation.GetNthSegment(index).GetName()
        if segmentName in labelMap.labels.values():
            ids.InsertNextValue(segmentation.GetNthSegmentID(index))
        else:
            unknown.append(segmentName)
    if unknown and not ignoreUnknown:
        raise ValueError(f"segments not in label map {labelMap.name!r}: {', '.join(sorted(unknown))}")
    dtype = np.uint8 if max(labelMap.labels) <= 255 else np.uint16
    if ids.GetNumberOfValues() == 0:
        if referenceVolumeNode.GetImageData() is None:
            raise ValueError(f"{referenceVolumeNode.GetName()}: the reference volume has no voxels")
        return np.zeros(referenceVolumeNode.GetImageData().GetDimensions(), dtype)  # VTK dimensions are (I, J, K)
    table = _colorTable(scene, labelMap)
    labelNode = None
    try:
        labelNode = scene.AddNewNodeByClass(_LABELMAP_CLASS, "__RSuperExport__")
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentationNode, ids, labelNode, referenceVolumeNode, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
            table)
        if not ok:
            raise ValueError(f"{segmentationNode.GetName()}: the segments could not be exported")
        array, _ = volumeNodeToArray(labelNode)
    finally:
        if labelNode is not None and labelNode.GetDisplayNode() is not None:
            _removeNodes(scene, labelNode.GetDisplayNode())
        _removeNodes(scene, labelNode, table)
    return array.astype(dtype)


def readSegmentationNode(path: str | os.PathLike[str], labelMap: Any, name: str, scene: Any = None,
                         referenceVolumeNode: Any = None) -> Any:
    """A label NIfTI (e.g. ``rsuper organs`` / ``rsuper predict`` output) as a new segmentation node, one
    segment per value present, named and coloured by ``labelMap`` (:func:`labelMapToSegmentationNode`)."""
    import nibabel as nib

    image = nib.load(os.fspath(path))
    return labelMapToSegmentationNode(np.asarray(image.dataobj), image.affine, labelMap, name, scene=scene,
                                      referenceVolumeNode=referenceVolumeNode)


def writeSegmentationNode(segmentationNode: Any, referenceVolumeNode: Any, labelMap: Any,
                          path: str | os.PathLike[str]) -> None:
    """A segmentation as a label NIfTI on ``referenceVolumeNode``'s grid and affine: each segment gets its
    name's value in ``labelMap`` (:func:`segmentationNodeToLabelMap`; unknown names raise ``ValueError``)."""
    import nibabel as nib

    labels = segmentationNodeToLabelMap(segmentationNode, referenceVolumeNode, labelMap)
    nib.save(nib.Nifti1Image(labels, volumeAffine(referenceVolumeNode)), os.fspath(path))


def writeVolumeNode(node: Any, path: str | os.PathLike[str]) -> None:
    """Write a volume node as NIfTI (``.nii`` / ``.nii.gz``) with nibabel: voxel type kept, affine as
    qform and sform (scanner space), units mm."""
    import nibabel as nib

    array, affine = volumeNodeToArray(node)
    image = nib.Nifti1Image(array, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    nib.save(image, os.fspath(path))


def readVolumeNode(path: str | os.PathLike[str], scene: Any = None, className: str = _SCALAR_CLASS,
                   name: str | None = None) -> Any:
    """Read a 3D NIfTI with nibabel into a new volume node (named after the file unless ``name``).

    Integer voxels stored without scaling keep their type (labels, int16 CTs); others become float32.

    Raises:
        ValueError: not a 3D image (trailing axes of length 1 are dropped).
    """
    import nibabel as nib

    path = os.fspath(path)
    image = nib.load(path)
    if len(image.shape) > 3 and all(s == 1 for s in image.shape[3:]):
        image = nib.funcs.squeeze_image(image)
    if len(image.shape) != 3:
        raise ValueError(f"{path}: not a 3D image (shape {tuple(image.shape)})")
    stored = np.dtype(image.get_data_dtype())
    slope, inter = getattr(image.dataobj, "slope", 1.0), getattr(image.dataobj, "inter", 0.0)
    scaled = float(slope if slope is not None else 1.0) != 1.0 or float(inter if inter is not None else 0.0) != 0.0
    if stored.kind in "iub" and not scaled:
        array = np.asarray(image.dataobj)
    else:
        array = np.asarray(image.dataobj, dtype=np.float32)
    if name is None:
        base = os.path.basename(path)
        name = base[:-7] if base.endswith(".nii.gz") else os.path.splitext(base)[0]
    return arrayToVolumeNode(array, image.affine, name, scene, className)


def storeFacts(node: Any, facts: Any) -> None:
    """Keep a case's report facts on a node (attribute :data:`FACTS_ATTRIBUTE`, JSON; saved with the scene).

    Args:
        node: any MRML node (usually the CT volume).
        facts: a ``ReportFacts.to_dict()`` dict, or an object with ``to_dict()``; ``None`` removes them.
    """
    if facts is None:
        node.RemoveAttribute(FACTS_ATTRIBUTE)
        return
    data = facts.to_dict() if hasattr(facts, "to_dict") else dict(facts)
    node.SetAttribute(FACTS_ATTRIBUTE, json.dumps(data, ensure_ascii=False))


def factsFromNode(node: Any) -> dict[str, Any] | None:
    """The facts dict stored by :func:`storeFacts`, or ``None`` when the node has none.

    Raises:
        ValueError: the attribute holds something that is not a JSON object.
    """
    text = node.GetAttribute(FACTS_ATTRIBUTE)
    if not text:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{node.GetName()}: attribute {FACTS_ATTRIBUTE} is not a JSON object")
    return data


def addLineMeasurement(p1Ras: Any, p2Ras: Any, label: str, scene: Any = None) -> Any:
    """A markups line node from ``p1Ras`` to ``p2Ras`` (RAS mm) named ``label``; Slicer shows its length.

    Markups classes are part of the ``slicer-core`` wheel as well as the application.
    """
    node = _scene(scene).AddNewNodeByClass("vtkMRMLMarkupsLineNode", label)
    for point in (p1Ras, p2Ras):
        x, y, z = (float(v) for v in point)
        node.AddControlPoint([x, y, z], "")
    node.CreateDefaultDisplayNodes()
    return node
