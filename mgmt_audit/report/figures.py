"""The report's figures: plain data in, a matplotlib figure out, embedded as a PNG data URI.

Every function draws with the object-oriented API on a fresh :class:`~matplotlib.figure.Figure`
(Agg canvas, constrained layout, no pyplot state), names configurations by their short keys (the
report's key table gives the full names), puts legends outside the axes, labels every axis with its
unit, and draws the reference it is read against (AUC 0.5 and the margin, loss H(p)) with a legend
entry. Colours come from the Okabe–Ito palette (safe for colour-blind readers); no axes carries more
than ``MAX_COLOURS`` colours, its grey reference lines included: more lines than ``MAX_LINES`` are
split over panels, more seed runs drawn in one colour. Statistics are computed by the caller
(:mod:`mgmt_audit.analysis`); nothing here estimates anything.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

# Okabe & Ito (2008), "Color Universal Design": distinguishable under every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
MAX_COLOURS = len(PALETTE)
MAX_LINES = MAX_COLOURS - 1  # coloured lines per axes, beside the grey reference line
CLASS_COLOURS = {0: "#0072B2", 1: "#D55E00"}  # label 0 blue, label 1 vermillion
CLASS_NAMES = {0: "label 0 (unmethylated)", 1: "label 1 (methylated)"}
CHANCE_STYLE = {"color": "0.3", "linestyle": "--", "linewidth": 1.2}
MARGIN_STYLE = {"color": "#E69F00", "linestyle": "-", "linewidth": 1.8}
SEED_COLOUR = "#56B4E9"
VERDICT_STYLE = {  # marker and colour per verdict in the power curve
    "signal": ("o", "#009E73"), "signal_below_margin": ("D", "#56B4E9"),
    "no_signal": ("s", "#0072B2"), "inconclusive": ("^", "#CC79A7"),
}
AUC_AXIS = "AUC on the evaluation patients (0.5 = chance, 1 = perfect)"
DPI = 90


def new_figure(width: float, height: float) -> Figure:
    """An empty figure on an Agg canvas (inches), laid out by matplotlib's constrained layout."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def to_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for an ``<img src>`` that needs no fetch."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _grid(figure: Figure, count: int, columns: int) -> list:
    """``count`` axes in rows of ``columns`` (the unused cells of the last row hidden)."""
    rows = math.ceil(count / columns)
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for unused in axes[count:]:
        unused.set_visible(False)
    return axes[:count]


@dataclass
class AucGroup:
    """One configuration as its verdict sees it: its key, each seed's AUC on the evaluation
    patients, the mean with its interval, and its study's label-permutation null band on the same
    patients (None without enough nulls)."""

    name: str
    aucs: Sequence[float]
    mean: float
    low: float
    high: float
    null_band: tuple[float, float] | None = None
    selected: bool = False


@dataclass
class AucPanel:
    """One cohort's configurations, with the panel title (cohort and verdict)."""

    title: str
    groups: Sequence[AucGroup]


def auc_overview(panels: Sequence[AucPanel], margin: float, level: str = "90%") -> Figure:
    """The report's centrepiece: one panel per cohort, one row per configuration (its key, the
    study's answer marked ▶), each seed's AUC (dots), the mean with its ``level`` interval (black),
    the label-permutation null band (grey), chance and the margin, on one shared AUC axis."""
    rows = [max(len(p.groups), 1) for p in panels]
    figure = new_figure(9.0, 0.9 + sum(0.28 * r + 0.42 for r in rows))
    grid = figure.subplots(len(panels), 1, sharex=True, squeeze=False,
                           gridspec_kw={"height_ratios": [r + 1.5 for r in rows]})[:, 0]
    rng = np.random.default_rng(0)
    for axes, panel in zip(grid, panels, strict=True):
        axes.axvline(0.5, label="chance (AUC 0.5)", **CHANCE_STYLE)
        axes.axvline(margin, label=f"margin (AUC {margin:g})", **MARGIN_STYLE)
        for row, group in enumerate(panel.groups):
            if group.null_band is not None:
                axes.fill_betweenx([row - 0.4, row + 0.4], *group.null_band, color="0.85", linewidth=0,
                                   label="label-permutation null, central 90%")
            aucs = np.asarray(group.aucs, dtype=float)
            y = row + rng.uniform(-0.2, 0.2, size=aucs.size) if aucs.size > 1 else np.full(aucs.size, row)
            axes.scatter(aucs, y, color=SEED_COLOUR, s=16, zorder=3, label="one seed run")
            axes.errorbar([group.mean], [row], xerr=[[group.mean - group.low], [group.high - group.mean]],
                          fmt="s", color="black", markersize=4, capsize=3, zorder=4,
                          label=f"mean over seeds, {level} interval")
        axes.set_yticks(range(len(panel.groups)),
                        [("▶ " if g.selected else "") + g.name for g in panel.groups], fontsize="small")
        axes.set_ylim(len(panel.groups) - 0.5, -0.5)
        axes.set_title(panel.title, fontsize="small", loc="left")
        axes.tick_params(axis="y", length=0)
    grid[-1].set_xlim(0.0, 1.0)
    grid[-1].set_xlabel(AUC_AXIS)
    _figure_legend(figure, grid, "outside lower center", ncol=5)
    return figure


def _figure_legend(figure: Figure, axes: Sequence, loc: str, ncol: int) -> None:
    """One legend for the whole figure, each label once, outside every axes."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        figure.legend(list(seen.values()), list(seen), loc=loc, ncol=min(ncol, len(seen)),
                      fontsize="small", frameon=False)


@dataclass
class ProbabilityPanel:
    """One run's predictions on the evaluation patients, with KDE curves per class and its
    bimodality statistics (``note``)."""

    title: str
    labels: np.ndarray
    probs: np.ndarray
    kde: Mapping[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # class -> (x, density)
    note: str = ""


def probability_histograms(panels: Sequence[ProbabilityPanel], columns: int = 6) -> Figure:
    """Predicted-probability histograms coloured by true label, with KDE curves, one panel per seed
    run in rows of ``columns``, each panel's bimodality statistics in its title (the MGMT paper's
    Figs 2, 3, 11, 12)."""
    columns = max(1, min(columns, len(panels)))
    figure = new_figure(max(1.75 * columns, 5.0), 0.5 + 1.95 * math.ceil(len(panels) / columns))
    bins = np.linspace(0.0, 1.0, 21)
    grid = _grid(figure, len(panels), columns)
    for index, (axes, panel) in enumerate(zip(grid, panels, strict=True)):
        for label in (0, 1):
            values = np.asarray(panel.probs)[np.asarray(panel.labels) == label]
            axes.hist(values, bins=bins, density=True, alpha=0.45, color=CLASS_COLOURS[label],
                      label=CLASS_NAMES[label])
            if label in panel.kde:
                x, density = panel.kde[label]
                axes.plot(x, density, color=CLASS_COLOURS[label], linewidth=1.3)
        axes.axvline(0.5, **CHANCE_STYLE)
        axes.set_title(f"{panel.title}\n{panel.note}", fontsize="small")
        axes.set_xlim(0.0, 1.0)
        axes.set_xticks([0.0, 0.5, 1.0])
        axes.set_xlabel("predicted P(label 1)", fontsize="small")
        if index % columns == 0:
            axes.set_ylabel("density (1 / unit P)", fontsize="small")
        axes.tick_params(labelsize="small")
    _figure_legend(figure, grid[:1], "outside upper center", ncol=2)
    return figure


@dataclass
class CurveSet:
    """One run's per-epoch losses."""

    name: str
    train_loss: Sequence[float]
    val_loss: Sequence[float]


@dataclass
class LossPanel:
    """One configuration's seed runs and the chance loss H(p) of its labels."""

    title: str
    runs: Sequence[CurveSet]
    chance: float


def loss_curves(panels: Sequence[LossPanel], columns: int = 4) -> Figure:
    """Training (solid) and validation (dashed) loss per epoch, one panel per configuration (a
    colour per seed run, one colour for all when there are more than ``MAX_LINES``), with the chance
    loss H(p) that a model ignoring its input converges to (the MGMT paper's Fig. 4)."""
    columns = max(1, min(columns, len(panels)))
    figure = new_figure(max(2.5 * columns, 5.0), 0.7 + 2.1 * math.ceil(len(panels) / columns))
    grid = _grid(figure, len(panels), columns)
    names: dict[str, str] = {}
    for index, (axes, panel) in enumerate(zip(grid, panels, strict=True)):
        many = len(panel.runs) > MAX_LINES
        for number, run in enumerate(panel.runs):
            colour = SEED_COLOUR if many else PALETTE[number]
            names.setdefault(f"seed runs ({len(panel.runs)})" if many else run.name, colour)
            axes.plot(np.arange(1, len(run.train_loss) + 1), run.train_loss, "-", color=colour, linewidth=1.1)
            axes.plot(np.arange(1, len(run.val_loss) + 1), run.val_loss, "--", color=colour, linewidth=1.1)
        axes.axhline(panel.chance, color="0.3", linestyle=":", linewidth=1.4)
        axes.set_title(panel.title, fontsize="small")
        axes.set_xlabel("epoch", fontsize="small")
        if index % columns == 0:
            axes.set_ylabel("cross-entropy (nats)", fontsize="small")
        axes.tick_params(labelsize="small")
        axes.xaxis.get_major_locator().set_params(integer=True)
    handles = [Line2D([], [], color=colour, linewidth=2) for colour in names.values()]
    handles += [Line2D([], [], color="0.2", linestyle="-"), Line2D([], [], color="0.2", linestyle="--"),
                Line2D([], [], color="0.3", linestyle=":", linewidth=1.4)]
    labels = [*names, "training loss", "validation loss", "chance loss H(p)"]
    columns_fit = max(1, int(figure.get_figwidth() / 1.5))  # legend entries that fit side by side
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), columns_fit),
                  fontsize="small", frameon=False)
    return figure


@dataclass
class Embedding:
    """One layer's 2-D t-SNE embedding with each point's label and the layer's separability; ``title``
    names the model and layer."""

    title: str
    points: np.ndarray  # (n, 2)
    labels: np.ndarray  # (n,) 0/1 classes
    separability: float | None = None


def tsne_grid(embeddings: Sequence[Embedding], class_names: Mapping[int, str], columns: int = 8) -> Figure:
    """One t-SNE scatter per (model, layer), points coloured by class, each with its layer's
    separability, in rows of ``columns`` (the MGMT paper's Figs 6 and 14)."""
    columns = max(1, min(columns, len(embeddings)))
    figure = new_figure(max(1.35 * columns, 5.0), 0.5 + 1.6 * math.ceil(len(embeddings) / columns))
    grid = _grid(figure, len(embeddings), columns)
    for index, (axes, embedding) in enumerate(zip(grid, embeddings, strict=True)):
        labels = np.asarray(embedding.labels)
        for cls, name in class_names.items():
            points = embedding.points[labels == cls]
            axes.scatter(points[:, 0], points[:, 1], s=5, color=CLASS_COLOURS[cls], label=name)
        subtitle = embedding.title
        if embedding.separability is not None:
            subtitle += f"\nseparability {embedding.separability:.2f}"
        axes.set_title(subtitle, fontsize="small")
        axes.set_xticks([])
        axes.set_yticks([])
        if index >= len(embeddings) - columns:
            axes.set_xlabel("t-SNE 1 (a.u.)", fontsize="small")
        if index % columns == 0:
            axes.set_ylabel("t-SNE 2 (a.u.)", fontsize="small")
    _figure_legend(figure, grid[:1], "outside upper center", ncol=2)
    return figure


def separability_curve(panels: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]],
                       chance: float = 0.5) -> Figure:
    """Class separability by layer depth: one panel per title in ``panels`` (a line per model in it,
    at most ``MAX_LINES`` per panel: more are split over further panels), with the chance level."""
    chunks = [(title if len(series) <= MAX_LINES else f"{title} ({part + 1})",
               dict(list(series.items())[start:start + MAX_LINES]))
              for title, series in panels.items()
              for part, start in enumerate(range(0, len(series), MAX_LINES))]
    columns = min(len(chunks), 2)
    figure = new_figure(10.0, 0.4 + 3.2 * math.ceil(len(chunks) / columns))
    grid = _grid(figure, len(chunks), columns)
    for axes, (title, series) in zip(grid, chunks, strict=True):
        for index, (name, points) in enumerate(series.items()):
            axes.plot(range(1, len(points) + 1), [value for _, value in points], "o-",
                      color=PALETTE[index], markersize=4, label=name)
        axes.axhline(chance, label=f"chance ({chance:g})", **CHANCE_STYLE)
        axes.set_title(title, fontsize="small")
        axes.set_xlabel("layer depth (1 = first probed layer)", fontsize="small")
        axes.set_ylabel("separability (kNN balanced accuracy)", fontsize="small")
        axes.set_ylim(0.0, 1.02)
        axes.tick_params(labelsize="small")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
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
    """AUC against planted signal strength S: each cohort's answer with its interval, its verdict as
    the marker, chance and the margin."""
    figure = new_figure(7.5, 3.4)
    axes = figure.add_subplot()
    points = sorted(points, key=lambda p: p.strength)
    axes.axhline(0.5, label="chance (AUC 0.5)", **CHANCE_STYLE)
    axes.axhline(margin, label=f"margin (AUC {margin:g})", **MARGIN_STYLE)
    axes.plot([p.strength for p in points], [p.auc for p in points], color="0.6", linewidth=1, zorder=1)
    for verdict, (marker, colour) in VERDICT_STYLE.items():
        chosen = [p for p in points if p.verdict == verdict]
        if chosen:
            axes.errorbar([p.strength for p in chosen], [p.auc for p in chosen],
                          yerr=[[p.auc - p.low for p in chosen], [p.high - p.auc for p in chosen]],
                          fmt=marker, color=colour, capsize=3, markersize=6, zorder=3,
                          label=f"{verdict}: AUC, {level} interval")
    axes.set_xlabel("planted signal strength S (dimensionless; 0 = none, 1 = strong)")
    axes.set_ylabel("AUC (0.5 = chance)")
    axes.set_ylim(0.0, 1.02)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    return figure


def importance_bars(importances: Mapping[str, float]) -> Figure:
    """Horizontal bars of hyperparameter importance (fANOVA share of the objective's variance)."""
    items = sorted(importances.items(), key=lambda item: item[1])
    figure = new_figure(6.5, 0.9 + 0.35 * len(items))
    axes = figure.add_subplot()
    axes.barh([name for name, _ in items], [value for _, value in items], color=PALETTE[2])
    axes.set_xlabel("importance (share of validation-AUC variance, 0 to 1)")
    axes.set_ylabel("hyperparameter")
    axes.set_xlim(0.0, 1.0)
    return figure


@dataclass
class OverlayRow:
    """One configuration's Grad-CAM overlays: its key and, per patient, the axial slice of the input
    (H, W), its tumour mask (H, W) and its CAM scaled to [0, 1] (H, W), with a caption each."""

    key: str
    images: Sequence[np.ndarray]
    masks: Sequence[np.ndarray]
    cams: Sequence[np.ndarray]
    captions: Sequence[str]


def attention_overlays(rows: Sequence[OverlayRow]) -> Figure:
    """Grad-CAM overlays, one row per configuration: the slice in grey, the CAM on top (inferno, more
    opaque where larger, 0 to 1 of the patient's largest value), the tumour mask outlined in cyan."""
    columns = max(1, max(len(r.images) for r in rows))
    figure = new_figure(0.9 + 1.5 * columns, 0.3 + 1.55 * len(rows))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    image = None
    for r, row in enumerate(rows):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row.images):
                ax.set_axis_off()
                continue
            ax.imshow(np.asarray(row.images[c]).T, cmap="gray", origin="lower", interpolation="nearest")
            cam = np.clip(np.asarray(row.cams[c], dtype=float).T, 0.0, 1.0)
            image = ax.imshow(cam, cmap="inferno", alpha=0.15 + 0.6 * cam, vmin=0.0, vmax=1.0,
                              origin="lower", interpolation="nearest")
            mask = np.asarray(row.masks[c]).T.astype(float)
            if mask.any():
                ax.contour(mask, levels=[0.5], colors="cyan", linewidths=1.0, origin="lower")
            ax.set_title(row.captions[c], fontsize="x-small")
            if c == 0:
                ax.set_ylabel(row.key, fontsize="small")
    if image is not None:
        bar = figure.colorbar(image, ax=axes[:, -1].tolist(), shrink=0.8)
        bar.set_label("Grad-CAM / patient max", fontsize="x-small")
    figure.legend(handles=[Line2D([], [], color="cyan", linewidth=1.0, label="tumour mask")],
                  loc="outside upper center", fontsize="x-small", frameon=False)
    return figure
