"""Intensity augmentation of a training patch (R-Super method notes §2.4).

Each transform is applied independently with probability 0.3, in this order,
on the z-scored float32 patch:

1. brightness: multiply by ``U[0.7, 1.3]``;
2. additive brightness: add one offset ``~ N(0, 0.1)`` to every voxel;
3. gamma ``γ ~ U[0.7, 1.5]`` on the intensities rescaled to [0, 1] by the
   patch's min and max, then mapped back to the original range;
4. contrast: scale the deviation from the patch mean by ``U[0.7, 1.3]``;
5. Gaussian blur, ``σ ~ U[0.5, 1.5]`` voxels on every axis
   (:func:`scipy.ndimage.gaussian_filter`);
6. Gaussian noise with standard deviation ``~ U[0, 0.2]``.

No spatial augmentation: the reference applies none to report cases, and its
rotation/shear of mask crops would need the label channels resampled too;
patches are taken as cut (a deliberate simplification for both case kinds).
Everything is drawn from the sample's ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Probability of each transform.
AUGMENT_P = 0.3


def augment_intensity(image: np.ndarray, rng: np.random.Generator, p: float = AUGMENT_P) -> np.ndarray:
    """Randomly augmented copy of a patch.

    Args:
        image: float ``(Px, Py, Pz)`` normalised intensities.
        rng: the sample's generator (the draws are fully determined by it).
        p: probability of each transform.

    Returns:
        float32 ``(Px, Py, Pz)``; a copy even when no transform fires.
    """
    out = np.array(image, dtype=np.float32, copy=True)
    apply = rng.random(6) < p
    if apply[0]:
        out *= np.float32(rng.uniform(0.7, 1.3))
    if apply[1]:
        out += np.float32(rng.normal(0.0, 0.1))
    if apply[2]:
        lo, hi = float(out.min()), float(out.max())
        if hi > lo:
            scaled = (out - lo) / (hi - lo)
            out = (np.power(scaled, rng.uniform(0.7, 1.5)) * (hi - lo) + lo).astype(np.float32)
    if apply[3]:
        mean = np.float32(out.mean())
        out = (out - mean) * np.float32(rng.uniform(0.7, 1.3)) + mean
    if apply[4]:
        out = ndi.gaussian_filter(out, sigma=rng.uniform(0.5, 1.5))
    if apply[5]:
        std = rng.uniform(0.0, 0.2)
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(std)
    return out
