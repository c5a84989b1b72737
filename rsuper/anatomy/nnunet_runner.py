"""Run a trained nnU-Net v2 organ model on CT files with nnU-Net's own predictor.

The network runs through ``nnunetv2``'s :class:`nnUNetPredictor` (sliding
window, Gaussian weighting, optional mirroring, nnU-Net's own preprocessing and
resampling back to the CT grid), called in-process on numpy arrays: no
subprocess, no worker processes, so it is safe inside 3D Slicer.

Axis convention. nnU-Net sees an image the way its planned reader
(``plans.json`` ``image_reader_writer``) loaded the training data:
``SimpleITKIO`` and ``NibabelIO`` give the voxel array with its axes reversed,
``(K, J, I)`` for a nibabel ``(I, J, K)`` array, with the spacing reversed too;
the ``...WithReorient`` readers first turn the image to RAS axes. CTs are read
here with nibabel and converted the same way (:func:`nnunet_input`), and the
labels are turned back (:func:`labels_from_nnunet`) and written with the CT's
own shape, affine and qform/sform codes, so they overlay the CT in any viewer.
A model planned with ``SimpleITKIO`` (nnU-Net's default) sees the voxel order
as stored, so a CT stored in another orientation than its training CTs looks
mirrored to it; ``reorient="RAS"`` (or the training data's axis codes) turns
each CT to those axes first and the labels back afterwards.

Network set-up. :meth:`nnUNetPredictor.initialize_from_trained_model_folder`
is used when the checkpoint's trainer class can be imported. Where it cannot
(a custom trainer not installed, or nnU-Net trainer modules that need
torchvision/timm where those are missing) the network is built from
``plans.json`` with the standard ``nnUNetTrainer.build_network_architecture``
and handed to :meth:`nnUNetPredictor.manual_initialization`; a trainer that
changed the architecture then fails loudly when the weights are loaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from rsuper.anatomy.nnunet_model import NnunetModel, NnunetModelError
from rsuper.progress import Progress

#: nnU-Net image readers this module reproduces -> whether they reorient to RAS first.
READERS: dict[str, bool] = {
    "SimpleITKIO": False,
    "NibabelIO": False,
    "SimpleITKIOWithReorient": True,
    "NibabelIOWithReorient": True,
}

#: ``(labels (I, J, K), affine (4, 4)) -> (labels, messages)``: applied to each prediction before writing.
Postprocess = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, list[str]]]


@dataclass
class OrganResult:
    """Outcome of one CT.

    Attributes:
        ct_path: the input CT.
        out_path: the label file (written only when ``ok``).
        ok: whether the labels were written.
        error: why not (names the file), else ``None``.
        seconds: wall time for this CT (read, predict, write).
        labels: label values present in the written file (background included).
        messages: notes from the post-processing step (label conversion, pancreas split).
    """

    ct_path: Path
    out_path: Path
    ok: bool
    error: str | None = None
    seconds: float = 0.0
    labels: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def load_ct(path: str | Path) -> nib.spatialimages.SpatialImage:
    """A CT image with exactly three dimensions (trailing singleton dimensions dropped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable, or not 3D; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CT file")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise ValueError(f"{path}: not a readable image ({exc})") from None
    if len(img.shape) > 3 and all(s == 1 for s in img.shape[3:]):
        img = nib.funcs.squeeze_image(img)
    if len(img.shape) != 3:
        raise ValueError(f"{path}: not a 3D image (shape {tuple(img.shape)}); organ models need one 3D CT volume")
    return img


def nnunet_input(img: nib.spatialimages.SpatialImage, reader: str) -> tuple[np.ndarray, list[float]]:
    """The CT as nnU-Net's ``reader`` would have loaded it.

    Args:
        img: 3D image, data ``(I, J, K)`` in HU.
        reader: a key of :data:`READERS`.

    Returns:
        ``(data, spacing)``: float32 ``(1, K', J', I')`` (after the RAS
        reorientation for the ``WithReorient`` readers) and the matching spacing in mm.
    """
    if reader not in READERS:
        raise NnunetModelError(f"the model was planned with image reader {reader!r}; supported: {sorted(READERS)}")
    if READERS[reader]:
        img = img.as_reoriented(io_orientation(img.affine))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    if not np.isfinite(data).all():
        raise ValueError("the CT holds NaN or infinite values")
    spacing = [abs(float(z)) for z in img.header.get_zooms()[:3]][::-1]
    return np.ascontiguousarray(data.transpose(2, 1, 0))[None], spacing


def labels_from_nnunet(seg: np.ndarray, img: nib.spatialimages.SpatialImage, reader: str) -> np.ndarray:
    """Undo :func:`nnunet_input` for a label array.

    Args:
        seg: ``(K', J', I')`` labels from the predictor.
        img: the CT it was predicted from.
        reader: the same reader name as for :func:`nnunet_input`.

    Returns:
        ``(I, J, K)`` labels on the CT's own voxel grid.
    """
    labels = seg.transpose(2, 1, 0)
    if READERS[reader]:
        labels = apply_orientation(labels, ornt_transform(axcodes2ornt("RAS"), io_orientation(img.affine)))
    if labels.shape != img.shape[:3]:
        raise RuntimeError(f"prediction shape {labels.shape} differs from the CT's {img.shape[:3]}")
    return np.ascontiguousarray(labels)


def check_axcodes(codes: str) -> str:
    """Upper-case 3-letter axis codes (nibabel style, e.g. ``RAS``, ``LPS``), one letter per L/R, A/P, S/I pair.

    Raises:
        ValueError: anything else.
    """
    codes = codes.upper()
    found = sorted(i for c in codes for i, pair in enumerate(("LR", "AP", "IS")) if c in pair)
    if len(codes) != 3 or found != [0, 1, 2]:
        raise ValueError(f"axis codes must name each of L/R, A/P, S/I once (e.g. RAS, LPS), got {codes!r}")
    return codes


def write_labels(labels: np.ndarray, ct: nib.spatialimages.SpatialImage, out_path: str | Path) -> Path:
    """Write uint8 labels on the CT's grid (its affine, qform/sform codes and units), atomically.

    The file appears under its final name only when complete (written next to
    it under a temporary name, then renamed).
    """
    out_path = Path(out_path)
    if labels.shape != ct.shape[:3]:
        raise ValueError(f"{out_path}: labels of shape {labels.shape} do not match the CT's {ct.shape[:3]}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"{out_path}: label values outside 0..255 do not fit uint8")
    out = nib.Nifti1Image(labels.astype(np.uint8), ct.affine)
    if isinstance(ct, nib.Nifti1Image):
        qform, qcode = ct.header.get_qform(coded=True)
        sform, scode = ct.header.get_sform(coded=True)
        if qcode or scode:
            out.set_qform(qform if qform is not None else ct.affine, code=int(qcode))
            out.set_sform(sform if sform is not None else ct.affine, code=int(scode))
        out.header.set_xyzt_units(*ct.header.get_xyzt_units())
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".partial-{out_path.name}")
    nib.save(out, str(partial))
    os.replace(partial, out_path)
    return out_path


class OrganPredictor:
    """An nnU-Net v2 model ready to predict (network built and weights loaded once).

    Args:
        model: a checked model folder.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (``cuda`` must be available).
        step_size: sliding-window step as a fraction of the patch (nnU-Net default 0.5; larger is faster).
        use_mirroring: test-time mirroring along the axes the checkpoint allows
            (better, 2-8x slower).
        reorient: axis codes (e.g. ``RAS``) to turn each CT to before prediction
            (labels are turned back); ``None`` feeds the CT as stored, as nnU-Net does.

    Attributes:
        route: how the network was set up (``trained model folder`` or ``built from plans.json ...``).

    Raises:
        NnunetModelError: the model needs more than one input channel, an
            unsupported reader, or checkpoints that cannot be loaded.
        ValueError: a device that is not available.
    """

    def __init__(self, model: NnunetModel, device: str = "cpu", step_size: float = 0.5,
                 use_mirroring: bool = False, reorient: str | None = None) -> None:
        self.reorient = None if reorient is None else check_axcodes(reorient)
        if len(model.channel_names) != 1:
            raise NnunetModelError(
                f"{model.folder / 'dataset.json'}: the model expects {len(model.channel_names)} input channels "
                f"({', '.join(model.channel_names.values())}); organ prediction gives it one CT"
            )
        if model.reader_name not in READERS:
            raise NnunetModelError(f"{model.folder / 'plans.json'}: image reader {model.reader_name!r} is not "
                                   f"supported (supported: {sorted(READERS)})")
        if not 0 < step_size <= 1:
            raise ValueError(f"step size must be in (0, 1], got {step_size}")
        # nnU-Net reads this when imported; no data-augmentation workers are ever needed for prediction.
        os.environ.setdefault("nnUNet_n_proc_DA", "0")
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"unknown device {device!r} ({exc})") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
        self.model = model
        # its constructor prints a misleading note on CPU ("perform_everything_on_device=True ...")
        with contextlib.redirect_stdout(io.StringIO()):
            self._predictor = nnUNetPredictor(
                tile_step_size=step_size,
                use_gaussian=True,
                use_mirroring=use_mirroring,
                perform_everything_on_device=dev.type == "cuda",
                device=dev,
                verbose=False,
                verbose_preprocessing=False,
                allow_tqdm=False,
            )
        with _stdout_to_stderr():
            self.route = self._initialise()

    def _initialise(self) -> str:
        """Set up the predictor's network and weights; returns the route taken."""
        problem = _trainer_import_problem(self.model.trainer_name)
        if problem is None:
            try:
                self._predictor.initialize_from_trained_model_folder(
                    str(self.model.folder), self.model.folds, self.model.checkpoint_name
                )
                return "trained model folder"
            except Exception as exc:  # fall back below; a damaged checkpoint is reported there
                problem = f"{type(exc).__name__}: {exc}"
        self._initialise_from_plans()
        return f"built from plans.json (trainer class not usable: {problem})"

    def _initialise_from_plans(self) -> None:
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        checkpoints = self.model.load_checkpoints()
        first = checkpoints[0]
        plans_manager = PlansManager(self.model.plans)
        configuration = plans_manager.get_configuration(first["init_args"]["configuration"])
        dataset_json = self.model.dataset_json
        network = nnUNetTrainer.build_network_architecture(
            plans_manager,
            configuration,
            determine_num_input_channels(plans_manager, configuration, dataset_json),
            plans_manager.get_label_manager(dataset_json).num_segmentation_heads,
            enable_deep_supervision=False,
        )
        try:
            network.load_state_dict(first["network_weights"])
        except RuntimeError as exc:
            raise NnunetModelError(
                f"{self.model.checkpoint_path(self.model.folds[0])}: the weights do not fit the network that "
                f"plans.json describes (trainer {first['trainer_name']!r} may change the architecture; install "
                f"the package that defines it): {str(exc).splitlines()[0]}"
            ) from None
        self._predictor.manual_initialization(
            network, plans_manager, configuration, [c["network_weights"] for c in checkpoints], dataset_json,
            first["trainer_name"], first.get("inference_allowed_mirroring_axes"),
        )

    def predict(self, ct: nib.spatialimages.SpatialImage) -> np.ndarray:
        """Labels of one CT.

        Args:
            ct: 3D image (see :func:`load_ct`), data ``(I, J, K)`` in HU.

        Returns:
            uint8 ``(I, J, K)`` label values of the model's ``dataset.json``, on the CT's grid.
        """
        reader = self.model.reader_name
        image = ct
        if self.reorient is not None:
            image = ct.as_reoriented(ornt_transform(io_orientation(ct.affine), axcodes2ornt(tuple(self.reorient))))
        data, spacing = nnunet_input(image, reader)
        with _stdout_to_stderr():
            seg = self._predictor.predict_single_npy_array(data, {"spacing": spacing})
        labels = labels_from_nnunet(np.asarray(seg), image, reader)
        if self.reorient is not None:
            labels = apply_orientation(labels, ornt_transform(axcodes2ornt(tuple(self.reorient)),
                                                              io_orientation(ct.affine)))
        return np.ascontiguousarray(labels, dtype=np.uint8)


def predict_organs(
    ct_paths: Sequence[str | Path],
    model: NnunetModel | str | Path,
    out_paths: Sequence[str | Path],
    device: str = "cpu",
    step_size: float = 0.5,
    use_mirroring: bool = False,
    progress: str = "auto",
    postprocess: Postprocess | None = None,
    reorient: str | None = None,
) -> list[OrganResult]:
    """Predict organ labels for each CT and write one label file per CT.

    A CT that fails (unreadable, not 3D, out of memory ...) is recorded in its
    :class:`OrganResult` and reported as a progress ``error`` event; the
    others go on.

    Args:
        ct_paths: CT files (NIfTI), data ``(I, J, K)`` in HU.
        model: a checked model or a model folder (opened with all folds found).
        out_paths: label file per CT (``.nii.gz`` or ``.nii``).
        device: torch device (``cpu``, ``cuda`` ...).
        step_size: sliding-window step, fraction of the patch size.
        use_mirroring: test-time mirroring (slower, slightly better).
        progress: :class:`~rsuper.progress.Progress` mode.
        postprocess: applied to each prediction before writing (e.g. label
            conversion); without it the file holds the model's own label values.
        reorient: see :class:`OrganPredictor`.

    Returns:
        One :class:`OrganResult` per CT, in order.

    Raises:
        NnunetModelError: the model folder or its checkpoints cannot be used (before any CT is read).
        ValueError: ``ct_paths`` and ``out_paths`` differ in length, or a bad device / step size.
    """
    if len(ct_paths) != len(out_paths):
        raise ValueError(f"{len(ct_paths)} CTs but {len(out_paths)} output paths")
    if not isinstance(model, NnunetModel):
        model = NnunetModel.open(model)
    t0 = time.monotonic()
    predictor = OrganPredictor(model, device=device, step_size=step_size, use_mirroring=use_mirroring,
                               reorient=reorient)
    bar = Progress(len(ct_paths), mode=progress, desc="organs")
    bar.event("model", folder=str(model.folder), folds=[str(f) for f in model.folds], route=predictor.route,
              seconds=round(time.monotonic() - t0, 2))
    results = [_predict_one(predictor, Path(ct), Path(out), postprocess, bar) for ct, out in zip(ct_paths, out_paths)]
    bar.close(ok=sum(r.ok for r in results), failed=sum(not r.ok for r in results))
    return results


def _predict_one(predictor: OrganPredictor, ct_path: Path, out_path: Path, postprocess: Postprocess | None,
                 bar: Progress) -> OrganResult:
    t0 = time.monotonic()
    result = OrganResult(ct_path, out_path, ok=False)
    try:
        ct = load_ct(ct_path)
        labels = predictor.predict(ct)
        if postprocess is not None:
            labels, result.messages = postprocess(labels, ct.affine)
        write_labels(labels, ct, out_path)
        result.ok = True
        result.labels = [int(v) for v in np.flatnonzero(np.bincount(labels.ravel()))]
    except Exception as exc:  # one CT's failure must not stop the others; the reason is kept
        reason = str(exc) or type(exc).__name__
        result.error = reason if reason.startswith(str(ct_path)) else f"{ct_path}: {reason}"
        bar.event("error", case_id=ct_path.name, reason=result.error)
    result.seconds = round(time.monotonic() - t0, 3)
    bar.update(1, case=ct_path.name, ok=result.ok, seconds=result.seconds)
    return result


def _trainer_import_problem(trainer_name: str | None) -> str | None:
    """Why the trainer class cannot be imported, or ``None`` when it can (or is unknown until loaded)."""
    if trainer_name is None:
        return None
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        recursive_find_trainer_class_by_name(trainer_name)
    except Exception as exc:  # missing optional packages, unknown custom trainer
        return f"{type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """nnU-Net prints notes to stdout; keep stdout free for JSON-lines progress."""
    with contextlib.redirect_stdout(sys.stderr):
        yield
