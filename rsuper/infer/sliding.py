"""Whole-volume sigmoid probabilities from a patch-trained network (sliding-window inference).

The volume is cut into overlapping windows of the training patch size, each
window goes through the network, the final head's logits become sigmoid
probabilities, and the overlapping probabilities are blended
(``monai.inferers.sliding_window_inference``). As in the reference, the
probabilities (not the logits) are averaged; the default blending weights the
window centres more (``"gaussian"``), ``"constant"`` is the reference's uniform
average.

Optional flip test-time augmentation (``tta=True``) runs every window four
times, as is and mirrored along each of its three axes, and averages the four
sigmoid probabilities (each mirrored back first) before blending, as nnU-Net
mirrors each window; the stitched volume is therefore still built only once.

Shapes: image ``(I, J, K)`` float32 (already preprocessed: resampled,
HU-clipped, z-scored); result ``(C, I, J, K)`` float32 in [0, 1], one channel
per class of the model (organs, then lesions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference
from torch import Tensor, nn

from rsuper.model.registry import as_heads

#: ``callback(windows_done, windows_total)``, called after every batch of windows.
ProgressCallback = Callable[[int, int], None]

BLEND_MODES = ("gaussian", "constant")

#: Flip test-time augmentation: the window as is, then mirrored along each spatial axis of ``(B, C, X, Y, Z)``.
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (3,), (4,))


def _triple(patch_size: int | Sequence[int]) -> tuple[int, int, int]:
    size = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(int(s) for s in patch_size)
    if len(size) != 3 or any(s < 1 for s in size):
        raise ValueError(f"patch_size must be a positive int or three positive ints, got {patch_size!r}")
    return size  # type: ignore[return-value]


def count_windows(shape: Sequence[int], patch_size: int | Sequence[int], overlap: float) -> int:
    """Number of windows the sliding window visits for a volume of ``shape`` (I, J, K).

    Mirrors MONAI's grid: a volume smaller than the patch along an axis is
    padded to the patch size; the stride is ``int(patch * (1 - overlap))``
    (at least 1), or the whole axis when it equals the patch size.
    """
    patch = _triple(patch_size)
    padded = tuple(max(int(s), p) for s, p in zip(shape, patch))
    stride = tuple(p if s == p else max(int(p * (1 - overlap)), 1) for s, p in zip(padded, patch))
    return len(dense_patch_slices(padded, patch, stride))


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def predict_probabilities(
    model: nn.Module,
    image: np.ndarray | Tensor,
    patch_size: int | Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 2,
    device: str | torch.device | None = None,
    amp: bool = False,
    mode: str = "gaussian",
    pad_value: float | None = None,
    output_device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    tta: bool = False,
    channels: Sequence[int] | None = None,
) -> np.ndarray:
    """Sigmoid probabilities of every class over the whole volume.

    Args:
        model: network taking ``(B, 1, Px, Py, Pz)`` and returning logits in any
            form :func:`rsuper.model.registry.as_heads` accepts; only the final
            head is used. It is put in eval mode for the call and its previous
            mode is restored afterwards.
        image: ``(I, J, K)`` preprocessed volume (numpy array, memory map or tensor).
        patch_size: window size in voxels (int or ``(Px, Py, Pz)``); use the
            training patch size (it must suit the network, e.g. divisible by 8
            for a four-level U-Net).
        overlap: fraction of a window shared with its neighbour along each axis, in [0, 1).
        batch_size: windows per forward pass.
        device: where the windows run; the model is moved there. ``None``: the
            device the model's parameters are on (CPU for a parameter-free model).
        amp: run the network under ``torch.autocast`` (float16 on CUDA, bfloat16 on CPU).
        mode: blending of overlapping windows, ``"gaussian"`` or ``"constant"``.
        pad_value: value for the padding of a volume smaller than the patch.
            ``None``: the volume's minimum, i.e. air after HU clipping and
            z-scoring, which is what the outside of a body looks like.
        output_device: where the ``(C, I, J, K)`` result is stitched; the CPU by
            default so that a large volume does not have to fit on the GPU.
        progress: optional ``callback(windows_done, windows_total)``.
        tta: flip test-time augmentation (:data:`TTA_FLIPS`; four forward passes per window).
        channels: output channels to keep (indices of the model's C); ``None``
            keeps all. Only the kept channels are stitched, which bounds the
            memory of a large volume to ``len(channels)`` float32 copies.

    Returns:
        ``(C', I, J, K)`` float32 probabilities in [0, 1], ``C'`` = ``len(channels)`` or C.

    Raises:
        ValueError: a bad image shape, patch size, overlap, batch size, mode or channel list.
    """
    if mode not in BLEND_MODES:
        raise ValueError(f"blend mode {mode!r} not one of {BLEND_MODES}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    patch = _triple(patch_size)
    keep = None if channels is None else [int(c) for c in channels]
    if keep is not None and (not keep or min(keep) < 0):
        raise ValueError(f"channels must be a non-empty list of channel indices, got {channels!r}")
    if len(image.shape) != 3:
        raise ValueError(f"image must be (I, J, K), got shape {tuple(image.shape)}")

    if isinstance(image, Tensor):
        volume = image.detach().to("cpu", torch.float32)
    else:  # a copy: memory maps of the cache are read-only, which torch.from_numpy warns about
        volume = torch.from_numpy(np.array(image, dtype=np.float32))
    volume = volume[None, None]  # (1, 1, I, J, K)
    cval = float(volume.min()) if pad_value is None else float(pad_value)
    run_device = torch.device(device) if device is not None else _model_device(model)
    model.to(run_device)

    total = count_windows(image.shape, patch, overlap)
    done = 0

    def window_probs(windows: Tensor) -> Tensor:  # (b, 1, Px, Py, Pz) -> (b, C', Px, Py, Pz)
        with torch.autocast(run_device.type, enabled=amp):
            logits = as_heads(model(windows))[0]
        if keep is not None:
            logits = logits[:, keep]
        return torch.sigmoid(logits.float())

    def predictor(windows: Tensor) -> Tensor:  # (b, 1, Px, Py, Pz) -> (b, C', Px, Py, Pz)
        nonlocal done
        if tta:
            probs = window_probs(windows)
            for dims in TTA_FLIPS[1:]:
                probs += window_probs(windows.flip(dims)).flip(dims)
            probs /= len(TTA_FLIPS)
        else:
            probs = window_probs(windows)
        done += windows.shape[0]
        if progress is not None:
            progress(done, total)
        return probs

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            probs = sliding_window_inference(
                volume,
                roi_size=patch,
                sw_batch_size=batch_size,
                predictor=predictor,
                overlap=overlap,
                mode=mode,
                padding_mode="constant",
                cval=cval,
                sw_device=run_device,
                device=torch.device(output_device),
            )
    finally:
        model.train(was_training)
    result = probs[0].to("cpu", torch.float32).numpy()
    if not math.isfinite(float(result.sum())):
        raise FloatingPointError("the network produced non-finite probabilities")
    return result
