"""The extractor interface shared by the rules, transformers and openai backends."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterable, Iterator

from .schema import ExtractorInfo, ReportFacts


@dataclass
class ReportItem:
    """One report to extract: ``case_id`` and its free text."""

    case_id: str
    text: str


class ExtractionError(RuntimeError):
    """Extraction of one report failed (the batch records it and goes on)."""


class Extractor(ABC):
    """Turns report text into :class:`ReportFacts`.

    Subclasses implement :meth:`extract`; backends that profit from batching
    (language models) override :meth:`extract_many`.
    """

    #: Short backend name (``rules``, ``transformers``, ``openai``).
    name: str = "base"

    @property
    @abstractmethod
    def info(self) -> ExtractorInfo:
        """Name and version/model written into every facts record."""

    @abstractmethod
    def extract(self, case_id: str, text: str) -> ReportFacts:
        """Facts of one report. Raises :class:`ExtractionError` on failure."""

    def extract_many(
        self, items: Iterable[ReportItem]
    ) -> Iterator[tuple[ReportItem, ReportFacts | Exception]]:
        """Extract several reports, yielding ``(item, facts or the error)``.

        Never raises for a single bad report: the error is yielded instead,
        so a batch goes on.
        """
        for item in items:
            try:
                yield item, self.extract(item.case_id, item.text)
            except Exception as exc:  # noqa: BLE001 - one report must not stop a batch
                yield item, exc

    def close(self) -> None:
        """Release resources (models, HTTP clients)."""
