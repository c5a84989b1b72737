"""Dataset manifest: one row per CT case, read from CSV or JSON Lines.

Columns (docs/dataset-manifest.md):

* ``case_id`` (required, unique);
* ``ct`` (required; alias ``image``): the CT NIfTI, in HU;
* ``organs`` (optional): organ / sub-segment label NIfTI of the manifest's label map;
* ``tumours`` (optional): tumour mask NIfTI, binary or instance labels;
* ``facts`` (optional): a facts ``.json`` file (``ReportFacts.to_dict()`` form);
* ``split`` (optional): ``train`` (default), ``val`` or ``test``;
* any other column is kept as text in :attr:`ManifestRow.extra` (e.g. ``report``).

Relative paths resolve against the manifest's folder. Rows whose ``facts`` is
empty can take their facts from a JSON-lines facts file as written by
``rsuper extract`` (joined on ``case_id``).

Reading never stops at a bad row: what is wrong with a row (no case id, a
duplicate id, a facts file that is missing or invalid ...) is kept as
:class:`Problem` records in :attr:`ManifestRow.problems`; problems of the
facts file itself go to :attr:`Manifest.problems`. Only an unusable manifest
(missing file, no ``case_id`` / ``ct`` column) raises.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from rsuper.anatomy.labels import RSUPER_ORGAN_LABELS, LabelMap
from rsuper.report.schema import FactsError, ReportFacts

Severity = Literal["error", "warning", "info"]

#: Allowed values of the ``split`` column.
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Path columns, in the order :func:`write_manifest` writes them.
PATH_COLUMNS: tuple[str, ...] = ("ct", "organs", "tumours", "facts")
_ALIASES: dict[str, str] = {"image": "ct"}
_KNOWN = ("case_id", *PATH_COLUMNS, "split")

#: Largest plausible tumour diameter in mm for supervision (larger: an extraction error).
MAX_PLAUSIBLE_DIAMETER_MM = 300.0


@dataclass(frozen=True)
class Problem:
    """One finding about a case (or about the manifest, ``case_id`` then names the file).

    Attributes:
        case_id: the case, or ``"row N"`` when the row has no id.
        severity: ``error`` (the case cannot be used as given), ``warning``
            (usable, with less supervision) or ``info``.
        code: a stable identifier (docs/dataset-manifest.md lists them).
        message: a sentence for people.
    """

    case_id: str
    severity: Severity
    code: str
    message: str


@dataclass
class ManifestRow:
    """One case of the manifest, paths resolved.

    Attributes:
        case_id: identifier ("" when the row has none).
        row: 1-based data row number in the manifest file.
        ct, organs, tumours: absolute NIfTI paths, ``None`` when not given.
        facts_path: the facts ``.json`` file, ``None`` when not given (or joined).
        facts: the loaded facts, ``None`` when absent or invalid.
        split: ``train``, ``val`` or ``test``.
        extra: the other columns, as given.
        problems: what was wrong while reading this row.
    """

    case_id: str
    row: int
    ct: Path | None = None
    organs: Path | None = None
    tumours: Path | None = None
    facts_path: Path | None = None
    facts: ReportFacts | None = None
    split: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The case id, or ``row N`` when the row has none (for messages)."""
        return self.case_id or f"row {self.row}"

    def problem(self, severity: Severity, code: str, message: str) -> None:
        """Record a problem of this row."""
        self.problems.append(Problem(self.label, severity, code, message))

    @property
    def has_errors(self) -> bool:
        """Whether reading found an error in this row."""
        return any(p.severity == "error" for p in self.problems)


@dataclass
class Manifest:
    """All rows of a manifest file.

    Attributes:
        path: the manifest file.
        rows: rows in file order (bad ones included, with their problems).
        label_map: meaning of the organ mask labels.
        problems: problems not tied to one row (e.g. bad lines of the facts file).
    """

    path: Path
    rows: list[ManifestRow]
    label_map: LabelMap = field(default_factory=lambda: RSUPER_ORGAN_LABELS)
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ManifestRow]:
        return iter(self.rows)

    def case_ids(self) -> list[str]:
        """Case ids in file order (rows without one left out)."""
        return [r.case_id for r in self.rows if r.case_id]

    def by_id(self, case_id: str) -> ManifestRow:
        """The first row with this id (``KeyError`` if none)."""
        for r in self.rows:
            if r.case_id == case_id:
                return r
        raise KeyError(f"no case {case_id!r} in {self.path}")

    def split(self, name: str) -> list[ManifestRow]:
        """Rows of one split."""
        return [r for r in self.rows if r.split == name]

    def subset(self, case_ids: Iterable[str]) -> "Manifest":
        """A manifest of the rows whose id is in ``case_ids`` (manifest order; same label map)."""
        wanted = set(case_ids)
        return Manifest(self.path, [r for r in self.rows if r.case_id in wanted], self.label_map)


def load_label_map(label_map: LabelMap | str | Path | None) -> LabelMap:
    """A label map: ``None`` -> :data:`RSUPER_ORGAN_LABELS`; a path -> the JSON file (``LabelMap.to_dict`` form)."""
    if label_map is None:
        return RSUPER_ORGAN_LABELS
    if isinstance(label_map, LabelMap):
        return label_map
    with open(label_map, encoding="utf-8") as fh:
        return LabelMap.from_dict(json.load(fh))


def _resolve(value: Any, base: Path) -> Path | None:
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    p = Path(os.path.expanduser(text))
    return p if p.is_absolute() else (base / p).resolve()


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """``(row number, {column: value}, parse problem)`` of a CSV or JSONL manifest."""
    with open(path, encoding="utf-8", newline="") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            number = 0
            for line in fh:
                if not line.strip():
                    continue
                number += 1
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    yield number, None, f"invalid JSON: {exc}"
                    continue
                if not isinstance(obj, dict):
                    yield number, None, "not a JSON object"
                    continue
                yield number, obj, None
        else:
            reader = csv.DictReader(fh)
            for number, row in enumerate(reader, start=1):
                if None in row:
                    yield number, None, f"{len(row[None])} more values than columns"
                    continue
                yield number, row, None


def _columns(raw: dict[str, Any]) -> dict[str, Any]:
    """Normalised column names (stripped, lower case, aliases applied); known columns only are renamed."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        norm = str(key).strip().lower()
        norm = _ALIASES.get(norm, norm)
        if norm in _KNOWN and norm not in out:
            out[norm] = value
        else:
            out.setdefault(str(key), value)
    return out


def _facts_problem(data: Any) -> tuple[str, str] | None:
    """``(code, message)`` for a facts dict whose sizes are out of range, else ``None``."""
    if not isinstance(data, dict):
        return None
    for t in data.get("tumours") or []:
        for d in (t.get("diameters_mm") or []) if isinstance(t, dict) else []:
            if isinstance(d, (int, float)) and not 0.0 < d <= MAX_PLAUSIBLE_DIAMETER_MM:
                return "size_out_of_range", (
                    f"{t.get('organ')} tumour diameter {d} mm outside (0, {MAX_PLAUSIBLE_DIAMETER_MM:g}] mm"
                )
    return None


def _load_facts(row: ManifestRow, data: Any, where: str) -> None:
    """Set ``row.facts`` from a facts dict, or record why not."""
    try:
        if not isinstance(data, dict):
            raise FactsError("not a JSON object")
        facts = ReportFacts.from_dict(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # FactsError, or a malformed value inside
        code, message = _facts_problem(data) or ("facts_invalid", f"facts in {where} are invalid: {exc}")
        row.problem("error", code, message)
        return
    if facts.case_id != row.case_id:
        row.problem("warning", "facts_case_mismatch",
                    f"facts in {where} are for case {facts.case_id!r}, not {row.case_id!r}")
    row.facts = facts


def read_facts_lines(path: str | Path) -> tuple[dict[str, Any], list[Problem]]:
    """Facts dicts of a JSON-lines facts file by case id, and the lines that could not be read.

    Each line is one ``ReportFacts.to_dict()`` record (as ``rsuper extract``
    writes). A later record of the same case replaces an earlier one.
    :func:`rsuper.report.batch.read_facts_jsonl` stops at the first bad line;
    here a bad line must only affect its own case, so the dicts are returned
    raw and validated per row.
    """
    path = Path(path)
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                out[str(data["case_id"])] = data
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(Problem(str(path), "error", "facts_unreadable", f"{path}:{i}: {exc}"))
    return out, problems


def read_manifest(
    path: str | Path,
    facts_jsonl: str | Path | None = None,
    label_map: LabelMap | str | Path | None = None,
) -> Manifest:
    """Read a manifest (``.csv``, or ``.jsonl`` / ``.ndjson``).

    Args:
        path: the manifest file.
        facts_jsonl: optional facts JSON Lines joined on ``case_id`` for rows
            whose ``facts`` column is empty.
        label_map: the organ masks' label map (a :class:`LabelMap` or a JSON
            file); default :data:`RSUPER_ORGAN_LABELS`.

    Raises:
        FileNotFoundError: the manifest or the facts file does not exist.
        ValueError: a CSV manifest has no ``case_id`` or ``ct`` column (in JSON
            Lines each row without them gets a problem instead).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    base = path.resolve().parent
    manifest = Manifest(path=path, rows=[], label_map=load_label_map(label_map))
    joined: dict[str, Any] = {}
    if facts_jsonl is not None:
        if not Path(facts_jsonl).exists():
            raise FileNotFoundError(f"facts file not found: {facts_jsonl}")
        joined, manifest.problems = read_facts_lines(facts_jsonl)
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        _require_columns(path)
    seen: set[str] = set()
    for number, raw, parse_problem in _raw_rows(path):
        row = ManifestRow(case_id="", row=number)
        manifest.rows.append(row)
        if raw is None:
            row.problem("error", "bad_row", f"row {number}: {parse_problem}")
            continue
        _fill_row(row, _columns(raw), base, joined, seen)
    return manifest


def _require_columns(path: Path) -> None:
    """Raise ``ValueError`` unless a CSV manifest's header names ``case_id`` and ``ct`` (or ``image``)."""
    with open(path, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    columns = {_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in header}
    missing = [c for c in ("case_id", "ct") if c not in columns]
    if missing:
        raise ValueError(f"{path}: no {' or '.join(missing)} column (the CT column may be named ct or image)")


def _usable_id(case_id: str) -> bool:
    """Whether a case id can name a cache folder."""
    return case_id not in (".", "..") and not any(c in "/\\" or ord(c) < 32 for c in case_id)


def _fill_row(row: ManifestRow, cols: dict[str, Any], base: Path, joined: dict[str, Any], seen: set[str]) -> None:
    """Fill one row from its columns, recording its problems."""
    row.case_id = str(cols.get("case_id") or "").strip()
    if not row.case_id:
        row.problem("error", "missing_case_id", "the row has no case_id")
    elif row.case_id in seen:
        row.problem("error", "duplicate_case_id", f"case_id {row.case_id!r} appears more than once")
    elif not _usable_id(row.case_id):
        row.problem("error", "bad_case_id", f"case_id {row.case_id!r} cannot be a folder name (/, \\, control "
                    "characters, '.' and '..' are not allowed)")
    seen.add(row.case_id)
    row.ct, row.organs, row.tumours, row.facts_path = (_resolve(cols.get(c), base) for c in PATH_COLUMNS)
    if row.ct is None:
        row.problem("error", "missing_ct", "the row has no ct path")
    split = str(cols.get("split") or "").strip().lower() or "train"
    if split not in SPLITS:
        row.problem("error", "bad_split", f"split {split!r} is not one of {', '.join(SPLITS)}")
    row.split = split
    row.extra = {k: v for k, v in cols.items() if k not in _KNOWN}
    if row.facts_path is not None:
        if not row.facts_path.is_file():
            row.problem("error", "missing_file", f"facts file not found: {row.facts_path}")
            return
        try:
            data = json.loads(row.facts_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            row.problem("error", "facts_unreadable", f"cannot read {row.facts_path}: {exc}")
            return
        _load_facts(row, data, str(row.facts_path))
    elif row.case_id and row.case_id in joined:
        _load_facts(row, joined[row.case_id], "the facts JSON Lines file")


def _relative(p: Path | None, base: Path) -> str:
    if p is None:
        return ""
    try:
        return Path(os.path.relpath(Path(p).resolve(), base)).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return str(Path(p).resolve())


def write_manifest(rows: Iterable[ManifestRow], path: str | Path) -> Path:
    """Write rows as a manifest (``.csv``, or ``.jsonl`` / ``.ndjson``); paths relative to its folder.

    Columns: ``case_id, ct, organs, tumours, facts, split`` then the extra
    columns in first-seen order. Facts that came from a JSON-lines join (no
    ``facts_path``) are not written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent
    rows = list(rows)
    extras: list[str] = []
    for r in rows:
        extras.extend(k for k in r.extra if k not in extras)
    records = []
    for r in rows:
        rec: dict[str, Any] = {"case_id": r.case_id}
        for col, p in zip(PATH_COLUMNS, (r.ct, r.organs, r.tumours, r.facts_path)):
            rec[col] = _relative(p, base)
        rec["split"] = r.split
        rec.update({k: r.extra.get(k, "") for k in extras})
        records.append(rec)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for rec in records:
                fh.write(json.dumps({k: (v if v != "" else None) for k, v in rec.items()}, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(fh, ["case_id", *PATH_COLUMNS, "split", *extras])
            writer.writeheader()
            writer.writerows(records)
    return path
