"""PNG figures of training runs and results (matplotlib, no GUI).

* :func:`read_progress`: the events of a training job's ``progress.jsonl``.
* :func:`plot_loss_curves`: total loss against the training step, all runs
  overlaid on one axes so they compare directly (a faint raw curve and a
  moving average per run), plus one panel per run with its loss terms when
  the events carry them.
* :func:`plot_metric_bars`: grouped bars, one group per metric, one bar per run.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (rendered by Agg),
never through ``pyplot``, so no GUI backend is touched or switched (this also runs
inside 3D Slicer, whose own matplotlib backend stays as it is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

DPI = 100


def read_progress(path: str | Path) -> list[dict[str, Any]]:
    """The JSON-lines events of ``path`` (e.g. a job's ``progress.jsonl``), in file order.

    A last line that does not parse is skipped: the trainer may be writing it.

    Raises:
        ValueError: any other line is not a JSON object.
    """
    lines = [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    events = []
    for number, line in enumerate(lines, start=1):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(event, dict):
            raise ValueError(f"{path}:{number}: not a JSON object")
        events.append(event)
    return events


def _series(events: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Steps, total loss and loss terms of the progress events of one run.

    The step is ``global_step`` when present (it keeps counting across
    stages), else ``step``. A step logged twice (a resumed job) keeps its last
    event. Events of another kind, or without a step or a loss, are ignored.
    """
    by_step: dict[float, Mapping[str, Any]] = {}
    for event in events:
        if event.get("event", "progress") != "progress" or event.get("loss") is None:
            continue
        step = event.get("global_step", event.get("step"))
        if step is not None:
            by_step[float(step)] = event
    steps = np.array(sorted(by_step), dtype=np.float64)
    loss = np.array([float(by_step[s]["loss"]) for s in steps], dtype=np.float64)
    names = sorted({name for e in by_step.values() for name in (e.get("terms") or {})})
    terms = {
        name: np.array([float((by_step[s].get("terms") or {}).get(name, math.nan)) for s in steps])
        for name in names
    }
    return steps, loss, terms


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start), skipping ``nan`` entries."""
    valid = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(valid, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(valid)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    n = counts[end] - counts[start]
    return np.where(n > 0, (sums[end] - sums[start]) / np.maximum(n, 1), math.nan)


def _window(n: int, smooth: int | None) -> int:
    return max(1, smooth if smooth is not None else n // 20)


def _save(figure: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=DPI, format="png")  # a bare Figure renders PNG with Agg
    return out


def plot_loss_curves(
    runs: Mapping[str, Sequence[Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    path: str | Path,
    smooth: int | None = None,
    log_y: bool = False,
    show_terms: bool = True,
    title: str = "Training loss",
) -> Path:
    """Draw the training loss of one or more runs and save it as a PNG.

    Args:
        runs: ``{run name: events}`` or the events of a single run. Events are
            dicts as written to ``progress.jsonl``: ``"event": "progress"``
            (other events are skipped), ``"global_step"`` or ``"step"``,
            ``"loss"`` and optionally ``"terms": {name: value}``.
        path: the PNG to write (parent folders are created).
        smooth: moving-average window in logged points (default: 1/20 of the run).
        log_y: logarithmic loss axis.
        show_terms: add one panel per run with its smoothed loss terms (when
            any run logged terms).
        title: title of the overlay panel.

    Returns:
        ``path``.

    Raises:
        ValueError: no run has a progress event with a loss.
    """
    from matplotlib.figure import Figure

    named = dict(runs) if isinstance(runs, Mapping) else {"run": runs}
    series = {name: _series(events) for name, events in named.items()}
    series = {name: s for name, s in series.items() if len(s[0])}
    if not series:
        raise ValueError("no progress event with a step and a loss to plot")
    with_terms = [name for name, s in series.items() if s[2]] if show_terms else []

    panels = 1 + len(with_terms)
    figure = Figure(figsize=(7.0, 4.0 + 3.0 * len(with_terms)), layout="constrained")
    axes = figure.subplots(panels, 1, squeeze=False)[:, 0]
    overlay = axes[0]
    for index, (name, (steps, loss, _)) in enumerate(series.items()):
        colour = f"C{index % 10}"
        overlay.plot(steps, loss, color=colour, alpha=0.25, linewidth=0.8)
        overlay.plot(steps, _moving_average(loss, _window(len(loss), smooth)), color=colour, label=name)
    overlay.set(title=title, xlabel="step", ylabel="loss (raw faint, moving average solid)")
    overlay.legend(loc="upper right")
    for ax, name in zip(axes[1:], with_terms):
        steps, _, terms = series[name]
        for term, values in terms.items():
            ax.plot(steps, _moving_average(values, _window(len(values), smooth)), label=term)
        ax.set(title=f"{name}: loss terms (moving average)", xlabel="step", ylabel="term")
        ax.legend(loc="upper right", fontsize="small")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        if log_y:
            ax.set_yscale("log")
    return _save(figure, path)


def plot_metric_bars(
    results: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str = "Results",
    ylabel: str = "value",
) -> Path:
    """Grouped bar chart of metrics per run, saved as a PNG.

    Args:
        results: ``{run name: {metric name: value}}``, e.g.
            ``{"masks only": {"DSC": 0.5, "F1": 0.6}, "masks + reports": {...}}``.
            Metrics are grouped in first-seen order; a missing or ``nan``
            value leaves its bar out and is written "n/a".
        path: the PNG to write (parent folders are created).
        title: figure title.
        ylabel: value axis label. The axis spans [0, 1] when every value lies there.

    Returns:
        ``path``.

    Raises:
        ValueError: ``results`` holds no metric.
    """
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(m for values in results.values() for m in values))
    if not metrics:
        raise ValueError("no metric to plot")
    runs = list(results)
    width = 0.8 / len(runs)
    x = np.arange(len(metrics))
    figure = Figure(figsize=(max(5.0, 1.2 * len(metrics) * max(1, len(runs) / 2)), 4.0), layout="constrained")
    ax = figure.subplots()
    finite = []
    for index, run in enumerate(runs):
        values = np.array([float(results[run].get(m, math.nan)) for m in metrics])
        positions = x + (index - (len(runs) - 1) / 2) * width
        bars = ax.bar(positions, np.nan_to_num(values, nan=0.0), width, label=run, color=f"C{index % 10}")
        ax.bar_label(bars, labels=["n/a" if math.isnan(v) else f"{v:.3g}" for v in values], fontsize="small")
        finite.extend(v for v in values if math.isfinite(v))
    ax.set_xticks(x, metrics)
    if finite and min(finite) >= 0.0 and max(finite) <= 1.0:
        ax.set_ylim(0.0, 1.08)
    ax.set(title=title, ylabel=ylabel)
    ax.legend(loc="best")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)
