"""Chat prompts of the language-model extractors, built from template files.

The templates live in ``rsuper/report/prompts/`` (``system.txt``,
``user.txt``) so they can be read and edited without touching code. The user
template has two placeholders, ``{report}`` and ``{schema}``; they are filled
in one pass (other braces, e.g. of the JSON example, stay as written, and a
report that itself contains ``{schema}`` is not expanded).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from .json_schema import llm_output_schema

#: One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``.
Message = dict[str, str]

_PLACEHOLDER = re.compile(r"\{(report|schema)\}")
#: Longest piece of a rejected answer quoted back to the model on a retry.
_MAX_QUOTED_ANSWER = 4000


@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    """Text of ``prompts/<name>`` from the installed package."""
    return resources.files("rsuper.report").joinpath("prompts", name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def schema_text() -> str:
    """The answer's JSON Schema as compact one-line JSON (goes into the prompt)."""
    return json.dumps(llm_output_schema(), separators=(",", ":"))


def render_user_prompt(report: str) -> str:
    """The user message for one report (template with report and schema filled in)."""
    values = {"report": report.strip(), "schema": schema_text()}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], load_template("user.txt"))


def build_messages(report: str) -> list[Message]:
    """System + user messages asking for the facts of one report."""
    return [
        {"role": "system", "content": load_template("system.txt").strip()},
        {"role": "user", "content": render_user_prompt(report)},
    ]


def retry_messages(report: str, rejected_answer: str, problem: str) -> list[Message]:
    """Messages for another try after an invalid answer.

    The first conversation, the rejected answer (as the assistant's turn, cut
    to a bounded length) and a user turn naming what was wrong. Only the last
    rejected answer is quoted, so the prompt does not grow with each retry.
    """
    return build_messages(report) + [
        {"role": "assistant", "content": rejected_answer[:_MAX_QUOTED_ANSWER]},
        {
            "role": "user",
            "content": (
                "That answer cannot be used: "
                f"{problem}\n"
                "Answer again with one complete JSON object that satisfies the schema, and nothing else."
            ),
        },
    ]
