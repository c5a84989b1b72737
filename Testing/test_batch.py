"""Batch extraction: resume, bad rows, duplicates, encodings, progress events, the CLI."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsuper.cli import main
from rsuper.report.batch import done_case_ids, errors_path, read_facts_jsonl, run_batch
from rsuper.report.rules import RulesExtractor

ROOT = Path(__file__).resolve().parents[1]

GOOD = "A 2.3 x 1.9 cm hypodense mass in the pancreatic head."


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "report"])
        w.writerows(rows)


def test_bad_rows_never_stop_the_batch(tmp_path):
    src = tmp_path / "r.csv"
    _write_csv(src, [("c1", GOOD), ("c2", ""), ("c1", GOOD), ("", GOOD), ("c3", "Liver: 1 cm cyst in segment 2.")])
    # append a row with invalid UTF-8 bytes
    with open(src, "ab") as fh:
        fh.write(b"c4,\"mass \xff\xfe in liver\"\n")
    out = tmp_path / "facts.jsonl"
    s = run_batch(src, out, RulesExtractor(), progress="none")
    assert (s.total, s.extracted, s.errors) == (6, 2, 4)
    errors = [json.loads(x) for x in errors_path(out).read_text().splitlines()]
    reasons = {(e["case_id"], e["reason"].split(" (")[0]) for e in errors}
    assert ("c2", "empty report text") in reasons
    assert ("c1", "duplicate case id") in reasons
    assert ("", "missing case id") in reasons
    assert any(e["reason"].startswith("invalid UTF-8") and e["case_id"].startswith("c4") for e in errors)
    assert [f.case_id for f in read_facts_jsonl(out)] == ["c1", "c3"]


def test_resume_skips_done_cases_and_repairs_a_torn_last_line(tmp_path):
    src = tmp_path / "r.jsonl"
    src.write_text("".join(json.dumps({"case_id": f"c{i}", "report": GOOD}) + "\n" for i in range(5)))
    out = tmp_path / "facts.jsonl"
    run_batch(src, out, RulesExtractor(), progress="none")
    lines = out.read_text().splitlines(keepends=True)
    # simulate a kill: keep 2 whole lines and half of the third
    out.write_text(lines[0] + lines[1] + lines[2][:25])
    assert done_case_ids(out) == {"c0", "c1"}
    assert out.read_text() == lines[0] + lines[1]
    s = run_batch(src, out, RulesExtractor(), progress="none")
    assert (s.skipped, s.extracted, s.errors) == (2, 3, 0)
    assert [f.case_id for f in read_facts_jsonl(out)] == [f"c{i}" for i in range(5)]


def test_jsonl_progress_events(tmp_path, capsys):
    src = tmp_path / "r.csv"
    _write_csv(src, [("c1", GOOD), ("c2", "")])
    out = tmp_path / "facts.jsonl"
    run_batch(src, out, RulesExtractor(), progress="jsonl")
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "start" and names[-1] == "end" and "error" in names
    prog = [e for e in events if e["event"] == "progress"]
    assert prog[-1]["done"] == 2 and prog[-1]["total"] == 2
    assert events[-1]["errors"] == 1 and events[-1]["extracted"] == 1


def test_parallel_workers_give_the_same_facts(tmp_path):
    src = tmp_path / "r.csv"
    _write_csv(src, [(f"c{i}", GOOD if i % 2 else "Multiple hepatic cysts up to 9 mm.") for i in range(40)])
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    run_batch(src, one, RulesExtractor(), progress="none")
    ex = RulesExtractor(workers=2)
    try:
        run_batch(src, two, ex, progress="none")
    finally:
        ex.close()
    assert one.read_text() == two.read_text()


def test_missing_columns_give_a_clear_error(tmp_path, capsys):
    src = tmp_path / "r.csv"
    src.write_text("name,text\nx,y\n")
    rc = main(["extract", "--reports", str(src), "--out", str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert "no case id column" in capsys.readouterr().err


def test_cli_writes_jsonl_csv_and_reference_csv(tmp_path, capsys):
    src = tmp_path / "r.csv"
    _write_csv(src, [("c1", GOOD), ("c2", "The liver and spleen are unremarkable.")])
    out = tmp_path / "facts.jsonl"
    rc = main(["extract", "--reports", str(src), "--out", str(out), "--csv", str(tmp_path / "f.csv"),
               "--reference-csv", str(tmp_path / "ref.csv"), "--progress", "none", "--print"])
    assert rc == 0
    printed = capsys.readouterr()
    assert "pancreas" in printed.out and "2 extracted" in printed.err
    assert (tmp_path / "f.csv").read_text().count("\n") == 3
    assert "BDMAP ID" in (tmp_path / "ref.csv").read_text()


def test_console_script_and_module_help():
    for cmd in (["-m", "rsuper", "--help"], ["-m", "rsuper", "extract", "--help"]):
        res = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert "rsuper" in res.stdout
    res = subprocess.run([sys.executable, "-m", "rsuper", "extract", "--help"], capture_output=True, text=True)
    assert "--backend" in res.stdout and "resumes" in res.stdout


def test_llm_backends_need_their_settings(tmp_path, capsys):
    src = tmp_path / "r.csv"
    _write_csv(src, [("c1", GOOD)])
    for backend, flag in (("openai", "--url"), ("transformers", "--model")):
        rc = main(["extract", "--reports", str(src), "--out", str(tmp_path / "o.jsonl"), "--backend", backend])
        assert rc == 2 and flag in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs(tmp_path):
    res = subprocess.run([sys.executable, "-m", "rsuper", "demo", "--out", str(tmp_path / "d"), "--quick",
                          "--seed", "11"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "d" / "facts.jsonl").exists()
    assert "Tumour facts" in res.stdout
    study = tmp_path / "d" / "study"
    results = json.loads((study / "results.json").read_text())
    assert set(results["summary"]) == {"masks_only", "masks_reports"}
    assert results["options"]["seed"] == 11
    for png in ("loss_curves.png", "metrics.png"):
        assert (study / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "masks + reports" in res.stdout and "detection F1" in res.stdout
    # Step 2: the organ overlay; step 4: predictions, the metrics table and the AI-vs-report pages.
    assert (tmp_path / "d" / "organs" / "organs_overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pancreas split Dice" in res.stdout
    assert "Evaluation" in res.stdout and (study / "metrics.csv").exists()
    assert "AI vs report" in (study / "comparison" / "index.html").read_text()
    pages = sorted((study / "comparison" / "index_cases").glob("*.html"))
    assert [p.stem for p in pages] == sorted(results["per_case"]["masks_reports"][i]["case_id"]
                                             for i in range(len(pages)))
    # The pseudo-mask diagnostic of the README runs on the demo's study folder.
    bench = subprocess.run([sys.executable, str(ROOT / "bench" / "pseudo_mask_quality.py"), str(study)],
                           capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert all(job in bench.stdout for job in ("stage1", "masks_only", "masks_reports"))
    assert (study / "cache_pseudo_masks").is_dir()
