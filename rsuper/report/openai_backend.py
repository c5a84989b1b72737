"""Extractor that asks an OpenAI-compatible chat server (vLLM, llama.cpp, Ollama ...).

Requests go to ``{base_url}/v1/chat/completions`` (``base_url`` may end in
``/v1`` or not) with temperature 0; nothing is sent anywhere else. When no
model name is given, the first id listed by ``GET /v1/models`` is used.

Constrained decoding (``json_schema=True``) sends the answer schema as
``response_format``, in one of two spellings chosen by ``schema_style``:

* ``"json_schema"`` (default, the OpenAI form; vLLM, Ollama, llama.cpp's
  ``llama-server``, LM Studio)::

      {"type": "json_schema", "json_schema": {"name": "report_facts", "schema": S}}

* ``"json_object"`` (llama-cpp-python's ``python -m llama_cpp.server``, which
  rejects the form above; ``llama-server`` accepts it too)::

      {"type": "json_object", "schema": S}

Each report gets at most ``1 + max_retries`` requests. A connection error,
timeout or HTTP 408/409/425/429/5xx is retried after an exponential backoff;
an invalid answer is retried at once with the problem shown to the model.
Other HTTP errors (400, 401, 404 ...) fail the report at once, since asking
again cannot help. ``extract_many`` runs ``workers`` requests concurrently.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator

import httpx

from .. import __version__
from .base import Extractor, ReportItem
from .json_schema import llm_output_schema
from .llm_parse import InvalidModelOutput, LLMExtractionError, parse_model_output
from .prompting import Message, build_messages, retry_messages
from .schema import ExtractorInfo, ReportFacts

SCHEMA_STYLES = ("json_schema", "json_object")
_RETRY_STATUS = {408, 409, 425, 429}


class _TransientError(Exception):
    """A request failure worth retrying (connection, timeout, overload)."""


class OpenAIExtractor(Extractor):
    """Report facts from an OpenAI-compatible ``/v1/chat/completions`` server.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` or ``.../v1``.
        model: model id; ``None`` takes the first id of ``GET /v1/models``.
        api_key: sent as ``Authorization: Bearer <api_key>`` when given.
        workers: concurrent requests in :meth:`extract_many`.
        timeout_s: limit of one request in seconds (connect limit
            ``min(timeout_s, 10)``).
        max_retries: extra requests per report after a failed one.
        json_schema: send the answer schema as ``response_format``.
        schema_style: ``"json_schema"`` or ``"json_object"`` (module docstring).
        max_tokens: token limit of one answer (``None``: the server's default).
        backoff_s: wait before the first retry of a failed request; doubles
            with each further retry.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        workers: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        json_schema: bool = True,
        *,
        schema_style: str = "json_schema",
        max_tokens: int | None = 1024,
        backoff_s: float = 0.5,
    ):
        if schema_style not in SCHEMA_STYLES:
            raise ValueError(f"schema_style must be one of {SCHEMA_STYLES}, not {schema_style!r}")
        if workers < 1 or max_retries < 0 or timeout_s <= 0:
            raise ValueError("workers must be >= 1, max_retries >= 0 and timeout_s > 0")
        root = base_url.strip().rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.api_root = f"{root}/v1"
        self.workers = workers
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.backoff_s = backoff_s
        self._response_format = _response_format(schema_style) if json_schema else None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max(workers, 1)),
            trust_env=False,
        )
        self._model = model
        self._model_lock = threading.Lock()

    # ------------------------------------------------------------ interface
    @property
    def model(self) -> str:
        """The model id (asks ``GET /v1/models`` once when none was given)."""
        with self._model_lock:
            if self._model is None:
                self._model = self._discover_model()
            return self._model

    @property
    def info(self) -> ExtractorInfo:
        return ExtractorInfo(self.name, __version__, self.model)

    def extract(self, case_id: str, text: str) -> ReportFacts:
        """Facts of one report; raises :class:`LLMExtractionError` after the last attempt."""
        model = self.model
        attempts = 1 + self.max_retries
        messages = build_messages(text)
        problems: list[str] = []
        for attempt in range(1, attempts + 1):
            try:
                answer, finish = self._chat(model, messages)
                facts = parse_model_output(answer, case_id, text, self.info)
            except _TransientError as exc:
                problems.append(str(exc))
                if attempt < attempts:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
                continue
            except LLMExtractionError as exc:  # a request the server rejects: asking again cannot help
                raise LLMExtractionError(f"{case_id}: {exc}", attempts=attempt, last_error=str(exc)) from exc
            except InvalidModelOutput as exc:
                problem = str(exc) + (" (the answer was cut off by the token limit)" if finish == "length" else "")
                problems.append(problem)
                messages = retry_messages(text, answer, problem)
                continue
            if attempt > 1:
                facts.warnings.insert(
                    0, f"valid answer on attempt {attempt} of {attempts}; earlier: " + " | ".join(problems)
                )
            return facts
        last = problems[-1]
        raise LLMExtractionError(
            f"{case_id}: no valid answer (attempts: {attempts}); last problem: {last}",
            attempts=attempts,
            last_error=last,
        )

    def extract_many(
        self, items: Iterable[ReportItem]
    ) -> Iterator[tuple[ReportItem, ReportFacts | Exception]]:
        """Extract with ``workers`` concurrent requests; yields results in input order.

        At most ``2 * workers`` reports are in flight, so ``items`` may be a
        long lazy iterable.
        """
        window: deque[tuple[ReportItem, Future[ReportFacts | Exception]]] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="rsuper-openai") as pool:
            for item in items:
                window.append((item, pool.submit(self._extract_or_error, item)))
                if len(window) >= 2 * self.workers:
                    done, future = window.popleft()
                    yield done, future.result()
            while window:
                done, future = window.popleft()
                yield done, future.result()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # ------------------------------------------------------------ internals
    def _extract_or_error(self, item: ReportItem) -> ReportFacts | Exception:
        try:
            return self.extract(item.case_id, item.text)
        except Exception as exc:  # noqa: BLE001 - one report must not stop a batch
            return exc

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """One HTTP request returning the decoded JSON body.

        Raises :class:`_TransientError` for failures worth retrying and
        :class:`LLMExtractionError` for the others.
        """
        url = f"{self.api_root}{path}"
        try:
            response = self._client.request(method, url, json=payload)
        except httpx.TimeoutException as exc:
            raise _TransientError(f"{method} {url} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _TransientError(f"could not reach {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            problem = f"{method} {url} returned HTTP {response.status_code}: {response.text[:500]}"
            if response.status_code >= 500 or response.status_code in _RETRY_STATUS:
                raise _TransientError(problem)
            raise LLMExtractionError(problem, attempts=1, last_error=problem)
        try:
            return response.json()
        except ValueError as exc:
            raise _TransientError(f"{method} {url} returned a body that is not JSON: {response.text[:200]!r}") from exc

    def _discover_model(self) -> str:
        """First model id of ``GET /v1/models`` (with the same retries as a report)."""
        attempts = 1 + self.max_retries
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                listing = self._request("GET", "/models")
                break
            except _TransientError as exc:
                last = str(exc)
                if attempt < attempts:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
        else:
            raise LLMExtractionError(
                f"could not list the server's models (attempts: {attempts}): {last}", attempts, last
            )
        ids = [m.get("id") for m in (listing.get("data") or []) if isinstance(m, dict) and m.get("id")]
        if not ids:
            problem = f"GET {self.api_root}/models lists no model"
            raise LLMExtractionError(problem, attempts=attempt, last_error=problem)
        return str(ids[0])

    def _chat(self, model: str, messages: list[Message]) -> tuple[str, str | None]:
        """Ask once; return the answer text and the finish reason."""
        payload: dict[str, Any] = {"model": model, "messages": messages, "temperature": 0}
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        if self._response_format is not None:
            payload["response_format"] = self._response_format
        body = self._request("POST", "/chat/completions", payload)
        try:
            choice = body["choices"][0]
            return str(choice["message"]["content"] or ""), choice.get("finish_reason")
        except (KeyError, IndexError, TypeError) as exc:
            raise _TransientError(f"unexpected chat completion response: {str(body)[:200]}") from exc


def _response_format(style: str) -> dict[str, Any]:
    """``response_format`` carrying the answer schema in the given spelling."""
    schema = llm_output_schema()
    if style == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "report_facts", "schema": schema}}
