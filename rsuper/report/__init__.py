"""Step 1 of R-Super: tumour facts from free-text radiology reports.

``schema`` (the facts record), ``rules`` (offline extractor), the language
model backends ``transformers_backend`` and ``openai_backend``, and ``batch``
(resumable extraction of a whole CSV/JSONL of reports).
"""
