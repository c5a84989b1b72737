"""rsuper.jobs.commands: every argument list is accepted by the real ``rsuper`` parser with the intended values."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from rsuper.cli import build_parser
from rsuper.jobs import commands


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def _parse(parser, argv):
    """The namespace ``rsuper`` gets for ``argv`` (which must start with ``python -m rsuper``)."""
    assert argv[:3] == [sys.executable, "-m", "rsuper"]
    return parser.parse_args(argv[3:])


def test_extract_backends(parser, tmp_path):
    args = _parse(parser, commands.extract_command(tmp_path / "reports.csv", tmp_path / "facts.jsonl"))
    assert args.command == "extract" and args.backend == "rules" and args.progress == "jsonl"
    assert Path(args.reports) == tmp_path / "reports.csv" and Path(args.out) == tmp_path / "facts.jsonl"
    args = _parse(parser, commands.extract_command("r.csv", "f.jsonl", "transformers", model=tmp_path / "model"))
    assert args.backend == "transformers" and Path(args.model) == tmp_path / "model"
    args = _parse(parser, commands.extract_command("r.csv", "f.jsonl", "openai", server_url="http://127.0.0.1:8000",
                                                   model="llama"))
    assert args.backend == "openai" and args.url == "http://127.0.0.1:8000" and args.model == "llama"
    with pytest.raises(ValueError):
        commands.extract_command("r.csv", "f.jsonl", "transformers")
    with pytest.raises(ValueError):
        commands.extract_command("r.csv", "f.jsonl", "openai")
    with pytest.raises(ValueError):
        commands.extract_command("r.csv", "f.jsonl", "regex")


def test_organs_predict_or_import(parser, tmp_path):
    args = _parse(parser, commands.organs_command(tmp_path / "ct.nii.gz", tmp_path / "organs.nii.gz",
                                                  model_dir=tmp_path / "model", device="cuda"))
    assert args.command == "organs" and Path(args.model) == tmp_path / "model" and args.import_path is None
    assert [Path(p) for p in args.ct] == [tmp_path / "ct.nii.gz"] and args.device == "cuda"
    assert args.progress == "jsonl"
    args = _parse(parser, commands.organs_command(["a.nii.gz", "b.nii.gz"], "out", model_dir="m"))
    assert [Path(p) for p in args.ct] == [Path("a.nii.gz"), Path("b.nii.gz")]
    args = _parse(parser, commands.organs_command(None, "organs.nii.gz", import_path=tmp_path / "totalseg"))
    assert Path(args.import_path) == tmp_path / "totalseg" and args.model is None and args.ct is None
    with pytest.raises(ValueError):
        commands.organs_command("ct.nii.gz", "out.nii.gz")
    with pytest.raises(ValueError):
        commands.organs_command("ct.nii.gz", "out.nii.gz", model_dir="m", import_path="i")
    with pytest.raises(ValueError):
        commands.organs_command(None, "out.nii.gz", model_dir="m")


def test_predict_options(parser, tmp_path):
    args = _parse(parser, commands.predict_command(tmp_path / "final.pt", "ct.nii.gz", "tumours.nii.gz"))
    assert args.command == "predict" and Path(args.model) == tmp_path / "final.pt"
    assert args.organs is None and args.probabilities is None and args.device == "cpu" and args.progress == "jsonl"
    args = _parse(parser, commands.predict_command("final.pt", "ct.nii.gz", "t.nii.gz", organs="o.nii.gz",
                                                   probabilities="p.nii.gz", device="cuda:1"))
    assert Path(args.organs) == Path("o.nii.gz") and Path(args.probabilities) == Path("p.nii.gz")
    assert args.device == "cuda:1"


def test_compare_options(parser, tmp_path):
    args = _parse(parser, commands.compare_command("tumours.json", None, None, "facts.jsonl", tmp_path / "c.json"))
    assert args.command == "compare" and args.ct is None and args.organs is None and args.html is None
    assert Path(args.out) == tmp_path / "c.json"
    args = _parse(parser, commands.compare_command("t.nii.gz", "ct.nii.gz", "organs.nii.gz", "facts.jsonl", "c.json",
                                                   html="c.html", case_id="case7", report="r.txt"))
    assert (Path(args.tumours), Path(args.ct), Path(args.organs), Path(args.html), Path(args.report)) == (
        Path("t.nii.gz"), Path("ct.nii.gz"), Path("organs.nii.gz"), Path("c.html"), Path("r.txt"))
    assert args.case_id == "case7"


def test_train_new_resume_and_fine_tune(parser, tmp_path):
    overrides = {"stages.0.steps": 200, "optim.ema": 0.0, "data.patch_size": [64, 64, 32], "device": "cuda",
                 "model.name": "1e-3", "data.augment": False}
    args = _parse(parser, commands.train_command(tmp_path / "train.yaml", tmp_path / "job", overrides))
    assert args.command == "train" and Path(args.config) == tmp_path / "train.yaml"
    assert Path(args.job) == tmp_path / "job" and args.resume is None and args.progress == "jsonl"
    # The trainer reads each --set value as YAML: the types must survive.
    parsed = {}
    for item in args.overrides:
        key, raw = item.split("=", 1)
        parsed[key] = yaml.safe_load(raw)
    assert parsed == overrides
    args = _parse(parser, commands.train_command(None, tmp_path / "job", resume=True))
    assert Path(args.resume) == tmp_path / "job" and args.config is None and args.job is None
    args = _parse(parser, commands.train_command("ft.yaml", "job2", init_from=tmp_path / "final.pt"))
    assert Path(args.init) == tmp_path / "final.pt"
    # A caller that follows the job folder instead of the pipe asks for a quiet trainer.
    args = _parse(parser, commands.train_command(None, tmp_path / "job", resume=True, progress="none"))
    assert args.progress == "none" and Path(args.resume) == tmp_path / "job"
    args = _parse(parser, commands.train_command(tmp_path / "train.yaml", tmp_path / "job", progress="none"))
    assert args.progress == "none" and args.command == "train"
    with pytest.raises(ValueError):
        commands.train_command("c.yaml", "job", progress="verbose")
    with pytest.raises(ValueError):
        commands.train_command(None, "job")
    with pytest.raises(ValueError):
        commands.train_command("c.yaml", "job", resume=True, init_from="x.pt")


def test_other_interpreter():
    argv = commands.predict_command("m.pt", "ct.nii.gz", "t.nii.gz", python="/opt/venv/bin/python")
    assert argv[:4] == ["/opt/venv/bin/python", "-m", "rsuper", "predict"]


def test_pure_layer_imports_stay_light():
    """A GUI imports these at start-up: no torch, and not even numpy / scipy / nibabel / yaml."""
    import subprocess

    modules = ["rsuper.jobs.commands", "rsuper.jobs.background", "rsuper.jobs.training", "rsuper.requirements",
               "rsuper.compare.table", "rsuper.train.data_summary", "rsuper.jobs.environment",
               "rsuper.jobs.train_setup"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'nibabel', 'yaml') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "[]"
