"""Extractor that runs a local causal language model with Hugging Face ``transformers``.

The model is read from disk only (``local_files_only=True``): a directory
with ``config.json``, weights and tokenizer, or a ``.gguf`` file (dequantised
by transformers; needs the ``gguf`` package). Reports are processed in
batches: one ``generate`` call per batch, greedy decoding, left padding.
A report whose answer is invalid is asked again (the rejected answer and the
problem are shown to the model), at most ``max_retries`` times; the retries
of a batch are batched too.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from .. import __version__
from .base import ExtractionError, Extractor, ReportItem
from .llm_parse import InvalidModelOutput, LLMExtractionError, parse_model_output
from .prompting import Message, build_messages, retry_messages
from .schema import ExtractorInfo, ReportFacts


class TransformersExtractor(Extractor):
    """Report facts from a local chat model run in-process.

    Args:
        model: a local model directory, or the path of a ``.gguf`` file (then
            the directory is its parent and ``gguf_file`` its name).
        gguf_file: name of a ``.gguf`` file inside the ``model`` directory.
        device: torch device for the model (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        batch_size: reports per ``generate`` call.
        max_new_tokens: token limit of one answer.
        max_retries: extra attempts for a report whose answer is invalid.

    ``batch_size``, ``max_new_tokens`` and ``max_retries`` are kept as
    attributes of the same names and may be changed between calls.

    Attributes:
        generate_calls: number of ``generate`` calls made so far.
        sequences_generated: number of answers generated so far (all attempts).
    """

    name = "transformers"

    def __init__(
        self,
        model: str,
        gguf_file: str | None = None,
        device: str = "cpu",
        batch_size: int = 4,
        max_new_tokens: int = 768,
        max_retries: int = 2,
    ):
        if batch_size < 1 or max_new_tokens < 1 or max_retries < 0:
            raise ValueError("batch_size and max_new_tokens must be >= 1 and max_retries >= 0")
        path = Path(model).expanduser()
        if gguf_file is None and path.suffix.lower() == ".gguf":
            path, gguf_file = path.parent, path.name
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        if gguf_file is not None and not (path / gguf_file).is_file():
            raise FileNotFoundError(f"GGUF file not found: {path / gguf_file}")

        load_kwargs: dict[str, object] = {"local_files_only": True}
        if gguf_file is not None:
            load_kwargs["gguf_file"] = gguf_file
        self._tokenizer = AutoTokenizer.from_pretrained(str(path), **load_kwargs)
        if self._tokenizer.chat_template is None:
            raise ValueError(f"the tokenizer of {path} has no chat template; an instruction-tuned model is needed")
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._device = torch.device(device)
        self._model = AutoModelForCausalLM.from_pretrained(str(path), **load_kwargs).to(self._device).eval()
        self._model_name = gguf_file or path.name
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.max_retries = max_retries
        self.generate_calls = 0
        self.sequences_generated = 0

    @property
    def info(self) -> ExtractorInfo:
        return ExtractorInfo(self.name, __version__, self._model_name)

    def extract(self, case_id: str, text: str) -> ReportFacts:
        """Facts of one report (raises :class:`ExtractionError` on failure)."""
        ((_, result),) = self.extract_many([ReportItem(case_id, text)])
        if isinstance(result, Exception):
            raise result
        return result

    def extract_many(
        self, items: Iterable[ReportItem]
    ) -> Iterator[tuple[ReportItem, ReportFacts | Exception]]:
        """Extract in batches of ``batch_size``; yields results in input order."""
        iterator = iter(items)
        while batch := list(islice(iterator, self.batch_size)):
            yield from zip(batch, self._extract_batch(batch))

    def close(self) -> None:
        """Drop the model and free accelerator memory."""
        del self._model
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    # ------------------------------------------------------------ internals
    def prompt_text(self, conversation: list[Message]) -> str:
        """The model's input for one conversation: chat template applied, answer turn opened."""
        return self._tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def _generate(self, conversations: list[list[Message]]) -> list[tuple[str, bool]]:
        """One batched greedy ``generate``.

        Returns, per conversation, the answer text and whether it was cut off
        by ``max_new_tokens`` (no end-of-sequence token generated).
        """
        prompts = [self.prompt_text(c) for c in conversations]
        # The chat template already holds the special tokens.
        inputs = self._tokenizer(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
        inputs = inputs.to(self._device)
        eos = self._model.generation_config.eos_token_id
        if eos is None:
            eos = self._tokenizer.eos_token_id
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self._tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        with torch.inference_mode():
            output = self._model.generate(**inputs, generation_config=config)
        self.generate_calls += 1
        self.sequences_generated += len(conversations)
        answers = output[:, inputs["input_ids"].shape[1]:]  # (batch, new tokens)
        eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=answers.device)
        finished = torch.isin(answers, eos_ids).any(dim=1)  # (batch,)
        texts = self._tokenizer.batch_decode(answers, skip_special_tokens=True)
        return [(text, not done) for text, done in zip(texts, finished.tolist())]

    def _extract_batch(self, batch: list[ReportItem]) -> list[ReportFacts | Exception]:
        """Facts or error per report; invalid answers are retried as a smaller batch."""
        results: list[ReportFacts | Exception | None] = [None] * len(batch)
        conversations = [build_messages(item.text) for item in batch]
        problems: list[list[str]] = [[] for _ in batch]
        pending = list(range(len(batch)))
        attempts = 1 + self.max_retries
        for attempt in range(1, attempts + 1):
            try:
                answers = self._generate([conversations[i] for i in pending])
            except Exception as exc:  # noqa: BLE001 - a failed generate must not stop the batch
                for i in pending:
                    results[i] = ExtractionError(f"{batch[i].case_id}: generation failed: {exc}")
                return results  # type: ignore[return-value]
            still_pending = []
            for i, (answer, cut_off) in zip(pending, answers):
                item = batch[i]
                try:
                    facts = parse_model_output(answer, item.case_id, item.text, self.info)
                except InvalidModelOutput as exc:
                    problem = str(exc) + (" (the answer was cut off by max_new_tokens)" if cut_off else "")
                    problems[i].append(problem)
                    conversations[i] = retry_messages(item.text, answer, problem)
                    still_pending.append(i)
                    continue
                if attempt > 1:
                    facts.warnings.insert(
                        0, f"valid answer on attempt {attempt} of {attempts}; earlier: " + " | ".join(problems[i])
                    )
                results[i] = facts
            pending = still_pending
            if not pending:
                break
        for i in pending:
            last = problems[i][-1]
            results[i] = LLMExtractionError(
                f"{batch[i].case_id}: no valid answer (attempts: {attempts}); last problem: {last}",
                attempts=attempts,
                last_error=last,
            )
        return results  # type: ignore[return-value]
