"""Training configuration: YAML + overrides, strict keys, relative paths, loss options."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsuper.train.config import ConfigError, config_from_dict, load_config, parse_overrides


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {"data": {"manifest": "m.csv", "facts_jsonl": "f.jsonl"}}))
    assert Path(cfg.data.manifest) == tmp_path / "m.csv"
    assert Path(cfg.data.facts_jsonl) == tmp_path / "f.jsonl"
    assert Path(cfg.data.cache) == tmp_path / "cache"


def test_defaults_are_the_two_stage_recipe(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {"data": {"manifest": "m.csv"}}))
    assert [s.data for s in cfg.stages] == ["masks", "all"]
    assert cfg.stages[0].report_weight == 0.0 and cfg.stages[1].report_weight == pytest.approx(0.1)
    assert cfg.stages[1].lr < cfg.stages[0].lr
    assert cfg.optim.ema == pytest.approx(0.99) and cfg.optim.grad_clip == pytest.approx(1.0)


def test_overrides_parse_yaml_values_and_index_stages(tmp_path: Path) -> None:
    overrides = ["stages.1.steps=7", "optim.ema=0", "data.patch_size=[32, 48, 64]", "model.kwargs.features=[4,8]"]
    cfg = load_config(_write(tmp_path, {"data": {"manifest": "m.csv"}}), overrides)
    assert cfg.stages[1].steps == 7
    assert cfg.optim.ema == 0.0
    assert cfg.data.patch_size == (32, 48, 64)
    assert cfg.model.kwargs["features"] == [4, 8]
    assert cfg.total_steps == cfg.stages[0].steps + 7


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"data": {"manifest": "m", "patchsize": [1, 2, 3]}}, "data.patchsize"),
        ({"data": {"manifest": "m"}, "optim": {"lr": 1}}, "optim.lr"),
        ({"data": {"manifest": "m"}, "stages": [{"name": "a", "data": "everything"}]}, "stages[0].data"),
        ({"data": {"manifest": "m", "batch_size": "two"}}, "data.batch_size"),
        ({"data": {"manifest": "m", "patch_size": [32, 32]}}, "data.patch_size"),
        ({"data": {"manifest": "m"}, "loss": {"volume": {"tol": 0.1}}}, "loss.volume.tol"),
        ({"data": {"manifest": "m"}, "stages": []}, "at least one stage"),
        ({"data": {"manifest": "m"}, "stages": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"data": {}}, "data.manifest is required"),
    ],
)
def test_bad_configs_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(data)
    assert needle in str(info.value)


def test_loss_options_reach_the_loss_config() -> None:
    cfg = config_from_dict({"data": {"manifest": "m"},
                            "loss": {"volume": {"tolerance": 0.1}, "ball": {"pseudo_mask": {"volume_mode": "sphere"}}}})
    loss = cfg.loss_config(cfg.stages[1], (3, 4, 5))
    assert loss.volume.tolerance == pytest.approx(0.1)
    assert loss.ball.pseudo_mask.volume_mode == "sphere"
    assert loss.lesion_channels == (3, 4, 5)
    assert loss.report_weight == cfg.stages[1].report_weight


def test_to_dict_round_trips() -> None:
    cfg = config_from_dict({"data": {"manifest": "/abs/m.csv"}, "seed": 3})
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError):
        parse_overrides(["no_equals_sign"])
    with pytest.raises(ConfigError):
        config_from_dict({"data": {"manifest": "m"}}, overrides=["stages.9.steps=1"])
