"""The ``rsuper`` command: one sub-command per stage.

Each sub-command lives in its stage's package as a module exposing
``add_parser(subparsers)`` and ``run(args) -> int``. Modules are imported
when the command line is parsed, so they must not import heavy libraries
(torch, transformers) at module level.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from rsuper import __version__

#: Modules that provide sub-commands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "rsuper.report.command_extract",
    "rsuper.report.command_schema",
    "rsuper.data.command_validate",
    "rsuper.data.command_preprocess",
    "rsuper.anatomy.command_organs",
    "rsuper.train.command_train",
    "rsuper.infer.command_predict",
    "rsuper.compare.command_compare",
    "rsuper.evaluate.command_evaluate",
    "rsuper.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="rsuper",
        description=(
            "R-Super: turn radiology reports into tumour-segmentation supervision. "
            "Run 'rsuper COMMAND --help' for each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"rsuper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        sp = module.add_parser(sub)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
