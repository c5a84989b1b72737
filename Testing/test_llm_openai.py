"""The ``openai`` backend against real HTTP endpoints on 127.0.0.1.

Most tests talk to llama-cpp-python's OpenAI-compatible server running
SmolLM2-135M-Instruct (started once per module). The model's facts are poor;
the tests check discovery, schema-constrained requests, the checks applied to
real answers, bounded retries counted from the server's access log,
concurrency, and how unreachable or silent servers are reported.
"""

from __future__ import annotations

import math
import re
import socket
import time

import httpx
import pytest
from llm_fixtures import free_port, llama_server  # noqa: F401 - fixture

from rsuper.report.base import ExtractionError, ReportItem
from rsuper.report.llm_parse import LLMExtractionError, report_numbers
from rsuper.report.openai_backend import OpenAIExtractor
from rsuper.report.schema import ReportFacts, validate_facts

CHAT = "/v1/chat/completions"

REPORTS = [
    ReportItem("case-a", "Liver: A 2.3 cm hypodense lesion in segment 7. Spleen is normal."),
    ReportItem("case-b", "Pancreas: 15 mm cyst in the tail. Kidneys unremarkable."),
    ReportItem("case-c", "Right kidney: two cysts measuring 8 and 5 mm."),
    ReportItem("case-d", "Spleen: 4 cm hypoattenuating mass. Liver normal."),
]


def llama_extractor(server, **options) -> OpenAIExtractor:
    """Extractor for llama-cpp-python's server (it takes the ``json_object`` spelling)."""
    options.setdefault("schema_style", "json_object")
    options.setdefault("api_key", server.api_key)
    return OpenAIExtractor(server.base_url, **options)


# ------------------------------------------------------------ with the real server
@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
@pytest.mark.slow
@pytest.mark.llm
def test_model_is_discovered_from_v1_models(llama_server, suffix):
    listed = httpx.get(
        f"{llama_server.base_url}/v1/models", headers=llama_server.auth_headers(), trust_env=False
    ).json()["data"][0]["id"]
    ex = OpenAIExtractor(llama_server.base_url + suffix, api_key=llama_server.api_key)
    try:
        assert ex.model == listed
        assert ex.info.name == "openai" and ex.info.model == listed
    finally:
        ex.close()


@pytest.mark.slow
@pytest.mark.llm
def test_schema_constrained_answer_becomes_checked_facts(llama_server):
    item = REPORTS[1]
    ex = llama_extractor(llama_server, max_tokens=200, max_retries=1)
    try:
        facts = ex.extract(item.case_id, item.text)
    finally:
        ex.close()
    assert isinstance(facts, ReportFacts)
    validate_facts(facts, item.text)
    numbers = report_numbers(item.text)
    for t in facts.tumours:  # whatever the model said, only numbers written in the report survive
        for d in t.diameters_mm:
            assert any(math.isclose(n, d) or math.isclose(n, d / 10) for n in numbers)
        if t.evidence is not None:
            assert item.text[t.evidence.start:t.evidence.end] == t.evidence.text
    for warning in facts.warnings:
        if "dropped, not supported" in warning:
            assert re.search(r"(diameter [\d.]+ mm|count \d+)", warning)


@pytest.mark.slow
@pytest.mark.llm
def test_truncated_answers_are_retried_a_bounded_number_of_times(llama_server):
    ex = llama_extractor(llama_server, max_tokens=4, max_retries=2)
    before = llama_server.request_count("POST", CHAT)
    try:
        with pytest.raises(LLMExtractionError) as info:
            ex.extract("case-t", REPORTS[0].text)
    finally:
        ex.close()
    assert info.value.attempts == 3
    assert "(attempts: 3)" in str(info.value)
    assert "cut off by the token limit" in info.value.last_error
    assert llama_server.request_count("POST", CHAT) - before == 3


@pytest.mark.slow
@pytest.mark.llm
def test_concurrent_workers_return_every_report_in_order(llama_server):
    ex = llama_extractor(llama_server, workers=3, max_tokens=4, max_retries=0)
    before = len(llama_server.request_clients("POST", CHAT))
    try:
        results = list(ex.extract_many(iter(REPORTS)))
    finally:
        ex.close()
    assert [item.case_id for item, _ in results] == [r.case_id for r in REPORTS]
    for item, result in results:
        assert isinstance(result, LLMExtractionError)
        assert str(result).startswith(item.case_id)
    clients = llama_server.request_clients("POST", CHAT)[before:]
    assert len(clients) == len(REPORTS)
    # Requests made one after another would reuse one keep-alive connection.
    assert len(set(clients)) > 1


@pytest.mark.slow
@pytest.mark.llm
def test_a_rejected_request_is_not_retried(llama_server):
    ex = llama_extractor(llama_server, model="smollm2", api_key="wrong-key", max_tokens=4, max_retries=2)
    before = llama_server.request_count("POST", CHAT)
    try:
        with pytest.raises(LLMExtractionError, match="returned HTTP 401") as info:
            ex.extract("case-r", REPORTS[0].text)
    finally:
        ex.close()
    assert info.value.attempts == 1
    assert llama_server.request_count("POST", CHAT) - before == 1


# ------------------------------------------------------------ unreachable or silent servers
def test_closed_port_gives_extraction_errors_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    ex = OpenAIExtractor(url, model="any", max_retries=2, backoff_s=0.01)
    try:
        ((item, result),) = list(ex.extract_many([REPORTS[0]]))
        assert isinstance(result, LLMExtractionError)
        assert result.attempts == 3
        assert "could not reach" in str(result) and url in str(result)
        with pytest.raises(ExtractionError, match="could not reach"):
            ex.extract("case-x", "Liver normal.")
    finally:
        ex.close()


def test_model_discovery_on_a_closed_port_fails_clearly():
    ex = OpenAIExtractor(f"http://127.0.0.1:{free_port()}", max_retries=1, backoff_s=0.01)
    try:
        with pytest.raises(LLMExtractionError, match=r"could not list the server's models \(attempts: 2\)"):
            _ = ex.model
    finally:
        ex.close()


def test_a_server_that_never_answers_times_out():
    # A listening socket that accepts connections (kernel backlog) but never replies.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        ex = OpenAIExtractor(url, model="any", timeout_s=0.3, max_retries=1, backoff_s=0.01)
        start = time.monotonic()
        try:
            with pytest.raises(LLMExtractionError, match="timed out") as info:
                ex.extract("case-s", "Liver normal.")
        finally:
            ex.close()
        elapsed = time.monotonic() - start
    assert info.value.attempts == 2
    assert 0.6 <= elapsed < 10.0


@pytest.mark.slow
@pytest.mark.llm
def test_cli_batch_against_the_real_server(llama_server, tmp_path):
    """`rsuper extract --backend openai` end to end: every case ends as facts or as a recorded error."""
    import json

    from rsuper.cli import main

    src = tmp_path / "reports.jsonl"
    src.write_text("".join(json.dumps({"case_id": r.case_id, "report": r.text}) + "\n" for r in REPORTS[:2]))
    out = tmp_path / "facts.jsonl"
    rc = main(["extract", "--reports", str(src), "--out", str(out), "--backend", "openai",
               "--url", llama_server.base_url, "--api-key", llama_server.api_key,
               "--schema-style", "json_object", "--workers", "2", "--max-retries", "1", "--progress", "none"])
    assert rc == 0
    done = [json.loads(x)["case_id"] for x in out.read_text().splitlines()]
    failed = [json.loads(x)["case_id"] for x in (tmp_path / "facts.jsonl.errors.jsonl").read_text().splitlines()]
    assert sorted(done + failed) == ["case-a", "case-b"]
    for line in out.read_text().splitlines():
        facts = ReportFacts.from_dict(json.loads(line))
        assert facts.extractor.name == "openai"
