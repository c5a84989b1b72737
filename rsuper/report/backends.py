"""Choose an extraction backend by name; heavy backends are imported on demand."""

from __future__ import annotations

from .base import Extractor

BACKENDS = ("rules", "transformers", "openai")


def make_extractor(
    backend: str = "rules",
    model: str | None = None,
    url: str | None = None,
    workers: int = 1,
    batch_size: int = 4,
    device: str = "cpu",
    max_retries: int = 2,
    timeout_s: float = 120.0,
    schema_style: str = "json_schema",
    api_key: str | None = None,
) -> Extractor:
    """Build the extractor for ``backend``.

    Args:
        backend: ``rules`` (offline, default), ``transformers`` (local model
            folder or GGUF file given by ``model``) or ``openai`` (a local
            OpenAI-compatible server at ``url``; ``model`` optional).
        workers: parallel processes (rules) or concurrent requests (openai).
        batch_size: reports per generate call (transformers).
        schema_style: how the JSON schema is sent to an OpenAI-compatible
            server: ``json_schema`` (vLLM, Ollama, llama.cpp), ``json_object``
            (llama-cpp-python's server) or ``none`` (no constrained decoding).
    """
    if backend == "rules":
        from .rules import RulesExtractor

        return RulesExtractor(workers=workers)
    if backend == "transformers":
        if not model:
            raise ValueError("--backend transformers needs --model PATH (a local model folder or .gguf file)")
        from .transformers_backend import TransformersExtractor

        return TransformersExtractor(model, device=device, batch_size=batch_size, max_retries=max_retries)
    if backend == "openai":
        if not url:
            raise ValueError("--backend openai needs --url URL of your OpenAI-compatible server (e.g. http://127.0.0.1:8000)")
        from .openai_backend import OpenAIExtractor

        return OpenAIExtractor(
            url, model=model, api_key=api_key, workers=workers, timeout_s=timeout_s, max_retries=max_retries,
            json_schema=schema_style != "none",
            schema_style="json_schema" if schema_style == "none" else schema_style,
        )
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
