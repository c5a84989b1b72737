"""A tiny real nnU-Net v2 results folder, built from phantoms for the organ-model tests.

:func:`build_tiny_model` writes
``<root>/Dataset901_TinyOrgans/nnUNetTrainer__nnUNetPlans__3d_fullres/`` with

* ``dataset.json``: one CT channel, background + :data:`ORGANS` (R-Super names);
* ``plans.json``: a valid nnU-Net v2 plan for a small ``PlainConvUNet``
  (3 stages, 8/16/32 features, patch 32^3 at 6 mm isotropic, CTNormalization
  with foreground intensity statistics of the training phantoms, read with
  ``SimpleITKIO``'s axis convention, torch-free nnU-Net resampling);
* ``fold_0/checkpoint_final.pth``: the keys nnU-Net's trainer saves, with
  ``network_weights`` trained briefly by a plain torch loop.

The training data go through exactly what prediction does: the runner's
:func:`~rsuper.anatomy.nnunet_runner.nnunet_input` and nnU-Net's own
``DefaultPreprocessor.run_case_npy`` (crop, CTNormalization, resampling to the
plan spacing), so the model meets the same intensities and axes at inference.
The network is the one ``nnUNetTrainer.build_network_architecture`` makes
from the plan. nnU-Net's trainer itself is not used: its data loading and
augmentation cost minutes per epoch on a CPU.

Timing on 2 idle CPU cores: about 5 s without training (random weights, for
geometry and error tests; mostly importing torch and nnU-Net), about 20 s
with the default 250 training steps (up to 3-4x longer on busy cores).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS
from rsuper.anatomy.nnunet_runner import nnunet_input
from rsuper.data.phantom import Phantom, make_phantom

SHAPE = (64, 56, 48)
SPACING_MM = (3.0, 3.0, 5.0)
#: Model labels 1..5 in this order (R-Super names; liver and pancreas whole).
ORGANS = ("liver", "spleen", "kidney_right", "kidney_left", "pancreas")
TARGET_SPACING_MM = [6.0, 6.0, 6.0]
PATCH = [32, 32, 32]
TRAIN_SEEDS = (101, 102, 103)
DATASET = "Dataset901_TinyOrgans"
TRAINER_FOLDER = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def model_labels(phantom_organs: np.ndarray) -> np.ndarray:
    """Phantom R-Super labels ``(I, J, K)`` -> uint8 labels of the tiny model (0 + :data:`ORGANS`)."""
    out = np.zeros(phantom_organs.shape, np.uint8)
    for value, organ in enumerate(ORGANS, start=1):
        names = [n for n in RSUPER_ORGAN_LABELS.labels.values() if n == organ or n.startswith(f"{organ}_")]
        out[np.isin(phantom_organs, [RSUPER_ORGAN_LABELS.label_of(n) for n in names])] = value
    return out


def dataset_json() -> dict[str, Any]:
    """nnU-Net v2 ``dataset.json`` of the tiny model."""
    return {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **{organ: i for i, organ in enumerate(ORGANS, start=1)}},
        "numTraining": len(TRAIN_SEEDS),
        "file_ending": ".nii.gz",
        "name": DATASET,
    }


def intensity_properties(phantoms: list[Phantom]) -> dict[str, float]:
    """nnU-Net's foreground intensity statistics (HU of voxels inside any model label)."""
    values = np.concatenate([p.ct[model_labels(p.organs) > 0].astype(np.float64) for p in phantoms])
    return {
        "max": float(values.max()),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "percentile_00_5": float(np.percentile(values, 0.5)),
        "percentile_99_5": float(np.percentile(values, 99.5)),
        "std": float(values.std()),
    }


def plans_json(intensity: dict[str, float]) -> dict[str, Any]:
    """nnU-Net v2 ``plans.json`` for a 3-stage PlainConvUNet at :data:`TARGET_SPACING_MM`."""
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 3,
            "features_per_stage": [8, 16, 32],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3,
            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "n_conv_per_stage": [2, 2, 2],
            "n_conv_per_stage_decoder": [2, 2],
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    median_shape = [int(round(s * m / t)) for s, m, t in zip(SHAPE[::-1], SPACING_MM[::-1], TARGET_SPACING_MM)]
    seg_kwargs = {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": DATASET,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(SPACING_MM[::-1]),
        "original_median_shape_after_transp": list(SHAPE[::-1]),
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": PATCH,
                "median_image_size_in_voxels": median_shape,
                "spacing": TARGET_SPACING_MM,
                "normalization_schemes": ["CTNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": seg_kwargs,
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                       "force_separate_z": None},
                "architecture": arch,
                "batch_dice": False,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity},
    }


def preprocess(phantom: Phantom, plans: dict[str, Any], dataset: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A phantom as nnU-Net's preprocessor gives it to the network.

    Returns:
        ``(image, seg)``: float32 ``(1, Z, Y, X)`` normalised CT at the plan spacing and int ``(1, Z, Y, X)`` labels.
    """
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(plans)
    configuration = manager.get_configuration("3d_fullres")
    ct = nib.Nifti1Image(phantom.ct, phantom.affine)
    image, spacing = nnunet_input(ct, plans["image_reader_writer"])
    seg, _ = nnunet_input(nib.Nifti1Image(model_labels(phantom.organs), phantom.affine), plans["image_reader_writer"])
    data, seg, _ = DefaultPreprocessor(verbose=False).run_case_npy(
        image, seg.astype(np.int16), {"spacing": spacing}, manager, configuration, dataset
    )
    return data.astype(np.float32), np.maximum(seg, 0).astype(np.int64)


def build_tiny_model(root: str | Path, iterations: int = 250, seed: int = 0) -> Path:
    """Write the tiny model folder under ``root``; returns the trainer folder.

    Args:
        root: becomes the ``nnUNet_results``-like root.
        iterations: training steps (batch 2 patches of 32^3); 0 keeps the random initial weights.
        seed: torch seed of the initial weights and of the patch sampling.
    """
    os.environ.setdefault("nnUNet_n_proc_DA", "0")
    import torch
    from monai.losses import DiceCELoss
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    phantoms = [make_phantom(s, SHAPE, SPACING_MM, n_tumours=(0, 1)) for s in TRAIN_SEEDS]
    dataset = dataset_json()
    plans = plans_json(intensity_properties(phantoms))
    folder = Path(root) / DATASET / TRAINER_FOLDER
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2), encoding="utf-8")
    (folder / "plans.json").write_text(json.dumps(plans, indent=2), encoding="utf-8")

    torch.manual_seed(seed)
    manager = PlansManager(plans)
    configuration = manager.get_configuration("3d_fullres")
    network = nnUNetTrainer.build_network_architecture(
        manager, configuration, 1, len(dataset["labels"]), enable_deep_supervision=False
    )
    if iterations:
        cases = [preprocess(p, plans, dataset) for p in phantoms]
        _train(network, cases, iterations, np.random.default_rng(seed), DiceCELoss(to_onehot_y=True, softmax=True))
    checkpoint = {
        "network_weights": network.state_dict(),
        "optimizer_state": None,
        "grad_scaler_state": None,
        "logging": {},
        "_best_ema": None,
        "current_epoch": 1,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
                      "device": torch.device("cpu")},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def _train(network: Any, cases: list[tuple[np.ndarray, np.ndarray]], iterations: int, rng: np.random.Generator,
           loss_fn: Any) -> None:
    """Adam on random 32^3 patches (zero-padded like nnU-Net's sliding window), 2 per step."""
    import torch

    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    network.train()
    for _ in range(iterations):
        images, segs = zip(*(_patch(*cases[rng.integers(len(cases))], rng) for _ in range(2)))
        image = torch.from_numpy(np.stack(images))
        seg = torch.from_numpy(np.stack(segs))
        optimiser.zero_grad()
        loss = loss_fn(network(image), seg)
        loss.backward()
        optimiser.step()
    network.eval()


def _patch(image: np.ndarray, seg: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random :data:`PATCH` crop of ``(1, Z, Y, X)`` arrays, centred in zeros where the volume is smaller
    (as nnU-Net's sliding window pads)."""
    short = [max(p - s, 0) for p, s in zip(PATCH, image.shape[1:])]
    pad = [(0, 0)] + [(d // 2, d - d // 2) for d in short]
    image, seg = np.pad(image, pad), np.pad(seg, pad)
    start = [int(rng.integers(0, s - p + 1)) for p, s in zip(PATCH, image.shape[1:])]
    box = (slice(None), *[slice(a, a + p) for a, p in zip(start, PATCH)])
    return image[box], seg[box]
