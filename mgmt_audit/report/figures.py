"""The report's figures: plain data in, a matplotlib figure out, embedded as a PNG data URI.

Every function draws with the object-oriented API on a fresh :class:`~matplotlib.figure.Figure`
(Agg canvas, no pyplot state), labels its axes, and draws the chance reference it is read against
(AUC 0.5, loss H(p)) with a legend entry. Statistics are computed by the caller
(:mod:`mgmt_audit.analysis`); nothing here estimates anything.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CLASS_COLOURS = {0: "#1f77b4", 1: "#d62728"}  # unmethylated blue, methylated red
CLASS_NAMES = {0: "label 0 (unmethylated)", 1: "label 1 (methylated)"}
CHANCE_STYLE = {"color": "0.25", "linestyle": "--", "linewidth": 1.2}
DPI = 90


def new_figure(width: float, height: float) -> Figure:
    """An empty figure on an Agg canvas (inches)."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def to_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for an ``<img src>`` that needs no fetch."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class AucGroup:
    """One configuration as its verdict sees it: each seed's AUC on the evaluation patients, the mean
    with its interval, and the pipeline null's band on the same patients (None without nulls)."""

    name: str
    aucs: Sequence[float]
    mean: float
    low: float
    high: float
    null_band: tuple[float, float] | None = None
    selected: bool = False


def auc_strip(groups: Sequence[AucGroup], margin: float, level: str = "90%") -> Figure:
    """Each configuration's seed AUCs (dots), their mean with its ``level`` interval (black bar), its
    study's label-permutation null band (grey), chance (AUC 0.5) and the margin."""
    figure = new_figure(9.0, 1.4 + 0.5 * max(len(groups), 2))
    axes = figure.add_subplot()
    axes.axvline(0.5, label="chance (AUC 0.5)", **CHANCE_STYLE)
    axes.axvline(margin, color="#d95f02", linewidth=1.5, label=f"margin (AUC {margin:g})")
    rng = np.random.default_rng(0)
    null_drawn = False
    for row, group in enumerate(groups):
        if group.null_band is not None:
            axes.fill_betweenx([row - 0.4, row + 0.4], *group.null_band, color="0.85", linewidth=0,
                               label=None if null_drawn else "label-permutation null, central 90%")
            null_drawn = True
        aucs = np.asarray(group.aucs, dtype=float)
        y = row + rng.uniform(-0.18, 0.18, size=aucs.size) if aucs.size > 1 else np.full(aucs.size, row)
        axes.scatter(aucs, y, color="#6baed6", s=18, zorder=3, label="seed run" if row == 0 else None)
        axes.errorbar([group.mean], [row], xerr=[[group.mean - group.low], [group.high - group.mean]],
                      fmt="s", color="black", markersize=5, capsize=4, zorder=4,
                      label=f"mean with its {level} interval" if row == 0 else None)
    names = [("▶ " if g.selected else "") + textwrap.fill(g.name, 34) for g in groups]
    axes.set_yticks(range(len(groups)), names, fontsize="small")
    axes.set_ylim(-0.6, len(groups) - 0.4)
    axes.invert_yaxis()
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("AUC on the evaluation patients")
    figure.legend(loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    return figure


@dataclass
class ProbabilityPanel:
    """One run's validation predictions, with KDE curves per class and bimodality statistics."""

    title: str
    labels: np.ndarray
    probs: np.ndarray
    kde: Mapping[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # class -> (x, density)
    note: str = ""


def probability_histograms(rows: Sequence[tuple[str, Sequence[ProbabilityPanel]]]) -> Figure:
    """A grid of predicted-probability histograms coloured by true label, with KDE curves: one row
    per configuration, one panel per seed, each panel's statistics below it (the MGMT paper's
    Figs 2, 3, 11, 12)."""
    columns = max(len(panels) for _, panels in rows)
    figure = new_figure(max(2.3 * columns, 4.6) + 0.4, 2.55 * len(rows) + 0.4)
    bins = np.linspace(0.0, 1.0, 21)
    for subfigure, (name, panels) in zip(figure.subfigures(len(rows), 1, squeeze=False)[:, 0], rows,
                                         strict=True):
        subfigure.suptitle(name, fontsize="small", fontweight="bold")
        row = subfigure.subplots(1, columns, squeeze=False)[0]
        for axes, panel in zip(row, panels, strict=False):
            for label in (0, 1):
                values = np.asarray(panel.probs)[np.asarray(panel.labels) == label]
                axes.hist(values, bins=bins, density=True, alpha=0.45, color=CLASS_COLOURS[label],
                          label=CLASS_NAMES[label])
                if label in panel.kde:
                    x, density = panel.kde[label]
                    axes.plot(x, density, color=CLASS_COLOURS[label], linewidth=1.5)
            axes.axvline(0.5, **CHANCE_STYLE)
            axes.set_title(panel.title, fontsize="small")
            axes.set_xlim(0.0, 1.0)
            axes.set_xlabel(f"predicted P(label 1)\n{panel.note}", fontsize="x-small")
            axes.set_ylabel("density", fontsize="x-small")
            axes.tick_params(labelsize="x-small")
        for axes in row[len(panels):]:
            axes.set_visible(False)
    handles, names = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside upper center", ncol=2, fontsize="small",
                  frameon=False)
    return figure


@dataclass
class CurveSet:
    """One run's per-epoch losses (and optionally AUCs)."""

    name: str
    train_loss: Sequence[float]
    val_loss: Sequence[float]


def loss_curves(rows: Sequence[tuple[str, Sequence[CurveSet], float]]) -> Figure:
    """Training and validation loss per epoch, one row per configuration (a line per seed run), with
    the chance loss H(p) that a model ignoring its input converges to (the MGMT paper's Fig. 4)."""
    figure = new_figure(8.0, 2.6 * len(rows) + 0.2)
    for subfigure, (name, runs, chance) in zip(figure.subfigures(len(rows), 1, squeeze=False)[:, 0],
                                               rows, strict=True):
        subfigure.suptitle(name, fontsize="small", fontweight="bold")
        train_axes, val_axes = subfigure.subplots(1, 2, sharey=True)
        for index, run in enumerate(runs):
            colour = f"C{index % 10}"
            train_axes.plot(np.arange(1, len(run.train_loss) + 1), run.train_loss, "o-", color=colour,
                            markersize=3, linewidth=1.2, label=run.name)
            val_axes.plot(np.arange(1, len(run.val_loss) + 1), run.val_loss, "o-", color=colour,
                          markersize=3, linewidth=1.2, label=run.name)
        for axes, title in ((train_axes, "training loss"), (val_axes, "validation loss")):
            axes.axhline(chance, label=f"chance loss H(p) = {chance:.4f}", **CHANCE_STYLE)
            axes.set_xlabel("epoch", fontsize="small")
            axes.set_title(title, fontsize="small")
            axes.tick_params(labelsize="x-small")
            axes.xaxis.get_major_locator().set_params(integer=True)
        train_axes.set_ylabel("cross-entropy (nats)", fontsize="small")
        handles, names = val_axes.get_legend_handles_labels()
        if len(runs) > 6:  # one entry per run would bury the chance line: keep it and one run
            handles, names = handles[:1] + handles[-1:], names[:1] + names[-1:]
        val_axes.legend(handles, names, fontsize="x-small", loc="best")
    return figure


@dataclass
class Embedding:
    """One layer's 2-D t-SNE embedding with each point's label and the layer's separability."""

    layer: str
    points: np.ndarray  # (n, 2)
    labels: np.ndarray  # (n,) integer classes
    separability: float | None = None


def tsne_grid(title: str, embeddings: Sequence[Embedding], class_names: Mapping[int, str],
              columns: int = 5) -> Figure:
    """One t-SNE scatter per layer, points coloured by class, with each layer's separability
    (the MGMT paper's Figs 6 and 14)."""
    columns = max(1, min(columns, len(embeddings)))
    rows = math.ceil(len(embeddings) / columns)
    figure = new_figure(max(2.0 * columns, 5.0) + 0.4, 2.2 * rows + 0.8)
    figure.suptitle(title, fontsize="medium")
    grid = figure.subplots(rows, columns, squeeze=False)
    binary = set(class_names) <= {0, 1}
    colours = {c: CLASS_COLOURS[c] if binary else f"C{c % 10}" for c in class_names}
    for axes, embedding in zip(grid.flat, embeddings, strict=False):
        labels = np.asarray(embedding.labels)
        for cls, name in class_names.items():
            points = embedding.points[labels == cls]
            axes.scatter(points[:, 0], points[:, 1], s=12, color=colours[cls], label=name)
        subtitle = embedding.layer
        if embedding.separability is not None:
            subtitle += f"\nseparability {embedding.separability:.2f}"
        axes.set_title(subtitle, fontsize="x-small")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_xlabel("t-SNE 1", fontsize="x-small")
        axes.set_ylabel("t-SNE 2", fontsize="x-small")
    for axes in list(grid.flat)[len(embeddings):]:
        axes.set_visible(False)
    handles, names = grid.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncol=min(len(names), 5),
                  fontsize="x-small", frameon=False)
    return figure


def separability_curve(series: Mapping[str, Sequence[tuple[str, float]]], chance: float = 0.5) -> Figure:
    """Class separability by layer depth, one line per probed model (study models and the control),
    with the chance level."""
    figure = new_figure(7.5, 3.8)
    axes = figure.add_subplot()
    for index, (name, points) in enumerate(series.items()):
        axes.plot(range(1, len(points) + 1), [value for _, value in points], "o-",
                  color=f"C{index % 10}", label=name)
    axes.axhline(chance, label=f"chance ({chance:g})", **CHANCE_STYLE)
    axes.set_xlabel("layer depth (1 = first probed layer)")
    axes.set_ylabel("separability (kNN balanced accuracy)")
    axes.set_ylim(0.0, 1.02)
    axes.xaxis.get_major_locator().set_params(integer=True)
    figure.legend(loc="outside right upper", fontsize="x-small", frameon=False)
    return figure


@dataclass
class PowerPoint:
    """A cohort with a known planted signal strength: its answer's AUC and interval, and its verdict."""

    strength: float
    auc: float
    low: float
    high: float
    verdict: str


def power_curve(points: Sequence[PowerPoint], margin: float, level: str = "90%") -> Figure:
    """AUC against planted signal strength S: each cohort's answer with its interval, chance and the margin."""
    figure = new_figure(6.5, 3.6)
    axes = figure.add_subplot()
    points = sorted(points, key=lambda p: p.strength)
    axes.axhline(0.5, label="chance (AUC 0.5)", **CHANCE_STYLE)
    axes.axhline(margin, color="#d95f02", linewidth=1.5, label=f"margin (AUC {margin:g})")
    x = [p.strength for p in points]
    axes.errorbar(x, [p.auc for p in points], yerr=[[p.auc - p.low for p in points], [p.high - p.auc for p in points]],
                  fmt="o-", color="#08519c", capsize=4, label=f"AUC with its {level} interval")
    for p in points:
        axes.annotate(p.verdict, (p.strength, p.high), textcoords="offset points", xytext=(0, 4),
                      ha="center", fontsize="x-small")
    axes.set_xlabel("planted signal strength S (0 = none)")
    axes.set_ylabel("AUC on the evaluation patients")
    axes.set_ylim(0.0, 1.08)
    axes.legend(fontsize="small", loc="lower right")
    return figure


def importance_bars(importances: Mapping[str, float]) -> Figure:
    """Horizontal bars of hyperparameter importance (fANOVA share of the objective's variance)."""
    items = sorted(importances.items(), key=lambda item: item[1])
    figure = new_figure(6.5, 0.8 + 0.35 * len(items))
    axes = figure.add_subplot()
    axes.barh([name for name, _ in items], [value for _, value in items], color="#41ab5d")
    axes.set_xlabel("importance (share of validation-AUC variance)")
    axes.set_ylabel("hyperparameter")
    axes.set_xlim(0.0, 1.0)
    return figure
