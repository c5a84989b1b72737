"""The ``transformers`` backend with a real small model (SmolLM2-135M-Instruct, GGUF, CPU).

The model is far too small to extract facts correctly; these tests check the
plumbing: offline loading, prompts from the template files, batched greedy
generation, bounded retries and per-report errors.
"""

from __future__ import annotations

import pytest
from llm_fixtures import smollm2_gguf, smollm2_transformers  # noqa: F401 - fixture

from rsuper.report.base import ExtractionError, ReportItem
from rsuper.report.llm_parse import LLMExtractionError
from rsuper.report.prompting import build_messages, load_template, schema_text
from rsuper.report.transformers_backend import TransformersExtractor

pytestmark = [pytest.mark.slow, pytest.mark.llm]

REPORTS = [
    ReportItem("case-a", "Liver: A 2.3 cm hypodense lesion in segment 7. Spleen is normal."),
    ReportItem("case-b", "Pancreas: 15 mm cyst in the tail. Kidneys unremarkable."),
    ReportItem("case-c", "Right kidney: two cysts measuring 8 and 5 mm."),
]


def test_missing_model_paths_fail_before_loading(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        TransformersExtractor(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="GGUF file not found"):
        TransformersExtractor(str(tmp_path), gguf_file="absent.gguf")


def test_loads_the_gguf_offline_and_names_it(smollm2_transformers):
    info = smollm2_transformers.info
    assert info.name == "transformers"
    assert info.model == smollm2_gguf().name


def test_prompt_is_built_from_the_template_files(smollm2_transformers):
    report = REPORTS[0].text
    prompt = smollm2_transformers.prompt_text(build_messages(report))
    assert load_template("system.txt").strip() in prompt
    assert report in prompt
    assert schema_text() in prompt
    # The chat template opens the assistant's turn after the user's message.
    assert prompt.rstrip().endswith("assistant")
    assert prompt.index(report) < prompt.rindex("assistant")


def test_batches_keep_order_and_retries_are_bounded(smollm2_transformers):
    ex = smollm2_transformers
    ex.batch_size, ex.max_retries, ex.max_new_tokens = 2, 1, 4  # 4 tokens cannot hold a valid answer
    calls, sequences = ex.generate_calls, ex.sequences_generated

    results = list(ex.extract_many(iter(REPORTS)))

    assert [item.case_id for item, _ in results] == [r.case_id for r in REPORTS]
    for item, result in results:
        assert isinstance(result, LLMExtractionError)
        assert result.attempts == 2
        assert str(result).startswith(f"{item.case_id}: no valid answer (attempts: 2)")
        assert result.last_error in str(result)
        assert "cut off by max_new_tokens" in result.last_error
    # Two batches (2 + 1 reports), each generated twice: 4 generate calls, 6 answers.
    assert ex.generate_calls - calls == 4
    assert ex.sequences_generated - sequences == 6


def test_single_report_raises_extraction_error(smollm2_transformers):
    ex = smollm2_transformers
    ex.max_retries, ex.max_new_tokens = 0, 4
    calls = ex.generate_calls
    with pytest.raises(ExtractionError, match=r"\(attempts: 1\)"):
        ex.extract("case-z", REPORTS[1].text)
    assert ex.generate_calls - calls == 1
