"""Global weighted rank pooling (GWRP) weights for the pseudo-mask voxels.

The ball loss does not trust every pseudo-mask voxel equally: the voxels the
network is already most confident about are the most likely to be tumour.
Within each sample's positive set of size N, voxels are ranked by predicted
probability (highest first) and voxel of rank i gets ``w_i ∝ q^i`` with
``q = concentration^(1/N)``, normalised so that ``sum_i w_i = N`` (the mean
weight is 1). With concentration 0.5 the first voxel weighs twice the last
(about 1.39 vs 0.69). Weights depend only on ranks: they carry no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def gwrp_weights(probs: Tensor, positive: Tensor, concentration: float = 0.5) -> Tensor:
    """Rank weights of the positive voxels, per sample.

    Args:
        probs: ``(B, ...)`` probabilities used for the ranking.
        positive: ``(B, ...)`` bool positive (pseudo-mask) voxels.
        concentration: ratio between the last and the first weight, in (0, 1];
            1 gives uniform weights.

    Returns:
        ``(B, ...)`` float32 weights, 0 outside ``positive``; each sample's
        weights sum to its number of positive voxels.
    """
    if not 0 < concentration <= 1:
        raise ValueError(f"concentration must be in (0, 1], got {concentration}")
    batch = probs.shape[0]
    flat_positive = positive.reshape(batch, -1)
    count = flat_positive.sum(dim=1)
    weights = torch.zeros(flat_positive.shape, dtype=torch.float32, device=probs.device)
    k_max = int(count.max()) if batch else 0
    if k_max == 0:
        return weights.reshape(positive.shape)
    key = torch.where(flat_positive, probs.reshape(batch, -1).float(), torch.full_like(weights, -1.0))
    order = key.topk(k_max, dim=1).indices
    rank = torch.arange(k_max, device=probs.device, dtype=torch.float64)[None, :]
    n = count.to(torch.float64).clamp_min(1)[:, None]
    ratio = concentration ** (1 / n)
    # sum_{i<N} q^i = (1 - q^N) / (1 - q) = (1 - concentration) / (1 - q); uniform when q = 1.
    if concentration < 1:
        rank_weights = n * ratio**rank * (1 - ratio) / (1 - concentration)
    else:
        rank_weights = torch.ones_like(rank).expand(batch, k_max)
    rank_weights = torch.where(rank < count[:, None], rank_weights, torch.zeros_like(rank_weights))
    weights.scatter_(1, order, rank_weights.to(torch.float32))
    return weights.reshape(positive.shape)
