"""The default segmenter: an nnU-Net-like 3D U-Net with deep supervision (MONAI ``DynUNet``).

Multi-label output: one sigmoid channel per class (organs, then lesions), so the
network returns logits and the losses apply the sigmoid.

Shapes: input ``(B, in_channels, X, Y, Z)``; every output head is full-resolution
logits ``(B, out_channels, X, Y, Z)``.

Size requirement: with ``n = len(features)`` levels the encoder halves the size
``n - 1`` times, so each of X, Y, Z must be divisible by ``2 ** (n - 1)`` (8 for
four levels), and in training the bottleneck (size / ``2 ** (n - 1)``) must hold
more than one voxel, since instance normalisation needs at least two voxels
(e.g. a 16 x 8 x 8 patch for four levels). Patches of 64, 96 or 128 voxels per
axis meet both.
"""

from __future__ import annotations

import math

from collections.abc import Sequence

import torch
from monai.networks.nets import DynUNet
from torch import Tensor, nn
from torch.nn import functional as F


class UNet3D(nn.Module):
    """3D U-Net (instance norm, leaky ReLU, stride-2 levels) returning a list of heads.

    Args:
        in_channels: image channels (1 for CT).
        out_channels: C, one sigmoid channel per class.
        features: channels per level, top to bottom; the encoder downsamples by 2
            between consecutive levels.
        deep_supervision: number of extra heads (0 = none). Head ``k`` (1-based)
            reads the decoder at 1 / ``2 ** k`` of the input size and is upsampled
            trilinearly to full size, as the reference's auxiliary head. Must be
            less than ``len(features) - 1``.
        kernel_size: convolution kernel size (voxels).
        res_block: residual convolution blocks instead of plain ones.
        dropout: dropout probability (``None`` = none).
        prior_probability: the output biases start at ``logit(prior_probability)``
            (0.01), so that every voxel begins as "probably absent", as most
            are: the first steps then learn shapes instead of spending hundreds
            of steps pushing the background down (the prior initialisation of
            Lin et al., "Focal Loss for Dense Object Detection", 2017).
            ``None`` keeps MONAI's default initialisation.

    ``forward(x)`` with ``x`` ``(B, in_channels, X, Y, Z)`` returns a list of logits
    ``(B, out_channels, X, Y, Z)``: the final head first, then the
    deep-supervision heads in training mode; only the final head in eval mode.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = (16, 32, 64, 128),
        deep_supervision: int = 1,
        kernel_size: int = 3,
        res_block: bool = False,
        dropout: float | None = None,
        prior_probability: float | None = 0.01,
    ) -> None:
        super().__init__()
        levels = len(features)
        if levels < 3:
            raise ValueError(f"UNet3D needs at least 3 levels of features, got {tuple(features)}")
        if not 0 <= deep_supervision < levels - 1:
            raise ValueError(
                f"deep_supervision must be in [0, {levels - 2}] for {levels} levels, got {deep_supervision}"
            )
        strides = [1] + [2] * (levels - 1)
        self.divisor = 2 ** (levels - 1)
        self.deep_supervision = deep_supervision
        self.net = DynUNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=[kernel_size] * levels,
            strides=strides,
            upsample_kernel_size=strides[1:],
            filters=list(features),
            dropout=dropout,
            res_block=res_block,
            deep_supervision=deep_supervision > 0,
            deep_supr_num=max(deep_supervision, 1),
        )
        if prior_probability is not None:
            if not 0.0 < prior_probability < 1.0:
                raise ValueError(f"prior_probability must be in (0, 1), got {prior_probability}")
            bias = math.log(prior_probability / (1.0 - prior_probability))
            heads = [self.net.output_block, *getattr(self.net, "deep_supervision_heads", [])]
            with torch.no_grad():
                for head in heads:
                    head.conv.conv.bias.fill_(bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Logits per head, each ``(B, out_channels, X, Y, Z)`` (see the class docstring)."""
        if x.ndim != 5:
            raise ValueError(f"UNet3D expects (B, C, X, Y, Z), got shape {tuple(x.shape)}")
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(
                f"UNet3D input size {tuple(x.shape[2:])} must be divisible by {self.divisor} along every axis"
            )
        # DynUNet.forward would upsample the auxiliary heads with nearest-neighbour
        # interpolation; run its two stages here and upsample trilinearly instead.
        final = self.net.output_block(self.net.skip_layers(x))
        if not self.deep_supervision:
            return [final]
        # The skip layers write the auxiliary heads' low-resolution logits into
        # the shared list ``net.heads``; take them and drop the references so the
        # module holds no graph between calls (and stays deep-copyable for EMA).
        low_res = list(self.net.heads)
        for k in range(len(self.net.heads)):
            self.net.heads[k] = torch.empty(0)
        if not self.training:
            return [final]
        size = final.shape[2:]
        return [final] + [F.interpolate(h, size=size, mode="trilinear", align_corners=False) for h in low_res]
