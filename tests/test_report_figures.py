"""The report's figures at 2 and at 20 configurations: every drawn text lies inside its figure (nothing
clipped) and overlaps no other text, legends sit outside the axes, and no axes carries more than 8
colours."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text

from mgmt_audit.report import figures

pytestmark = pytest.mark.filterwarnings("error")  # a library warning reaching a report user fails
COUNTS = (2, 20)


def drawn_texts(figure: Figure) -> list[tuple[str, object]]:
    """(text, window extent) of every non-empty text matplotlib actually draws when saving."""
    drawn = []
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            drawn.append((self.get_text(), self.get_window_extent(renderer)))

    with mock.patch.object(Text, "draw", record):
        figure.canvas.draw()
    return drawn


def assert_readable(figure: Figure) -> None:
    """No text is cut by the figure's edge, no two texts collide, every legend is outside the axes,
    no axes has more than MAX_COLOURS colours."""
    figure.canvas.draw()  # constrained layout settles over the first draw
    texts = drawn_texts(figure)
    assert texts
    width, height = figure.canvas.get_width_height()
    for text, box in texts:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, \
            f"{text!r} overflows the {width} x {height} figure: {box}"
    for i, (first, a) in enumerate(texts):
        for second, b in texts[i + 1:]:
            overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_w <= 1 or overlap_h <= 1, f"{first!r} collides with {second!r}"
    renderer = figure.canvas.get_renderer()
    legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend())]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in figure.axes:
            if ax.get_visible():
                assert not box.overlaps(ax.get_window_extent(renderer)), "a legend covers an axes"
    for ax in figure.axes:
        colours = {to_hex(line.get_color()) for line in ax.get_lines()}
        for collection in ax.collections:
            colours.update(to_hex(c) for c in collection.get_facecolors())
        colours.update(to_hex(patch.get_facecolor()) for patch in ax.patches)
        assert len(colours) <= figures.MAX_COLOURS, f"{len(colours)} colours on one axes"


def _groups(n: int) -> list[figures.AucGroup]:
    rng = np.random.default_rng(n)
    return [figures.AucGroup(f"C{i + 1}", rng.uniform(0.4, 0.7, 3), 0.55, 0.45, 0.65,
                             (0.42, 0.58) if i % 2 else None, selected=i == 0) for i in range(n)]


@pytest.mark.parametrize("n", COUNTS)
def test_auc_overview_is_readable(n):
    panels = [figures.AucPanel("null · no_signal (planted S = 0)", _groups(n)),
              figures.AucPanel("signal · signal (planted S = 1)", _groups(n))]
    assert_readable(figures.auc_overview(panels, 0.65))


@pytest.mark.parametrize("n", COUNTS)
def test_probability_histograms_are_readable(n):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    panels = [figures.ProbabilityPanel(f"medium · ▶ C{i + 1} · seed {s}", labels, rng.uniform(0, 1, 60),
                                       note="BC 0.41, dip p 0.53") for i in range(n) for s in range(3)]
    assert_readable(figures.probability_histograms(panels))


@pytest.mark.parametrize("n", COUNTS)
def test_loss_curves_are_readable(n):
    rng = np.random.default_rng(0)
    panels = [figures.LossPanel(f"medium · C{i + 1} · H(p) 0.693",
                                [figures.CurveSet(f"seed {s}", 0.69 + rng.normal(0, 0.05, 8),
                                                  0.69 + rng.normal(0, 0.05, 8)) for s in range(seeds)], 0.6931)
              for i, seeds in zip(range(n), [3, 12] * n)]
    assert_readable(figures.loss_curves(panels))


@pytest.mark.parametrize("n", COUNTS)
def test_tsne_grid_is_readable(n):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    embeddings = [figures.Embedding(f"medium · C{i + 1} · layer{d}", rng.normal(size=(40, 2)), labels, 0.55)
                  for i in range(n) for d in range(1, 5)]
    assert_readable(figures.tsne_grid(embeddings, figures.CLASS_NAMES))


@pytest.mark.parametrize("n", COUNTS)
def test_separability_curve_splits_lines_over_panels(n):
    series = {f"medium · C{i + 1}": [(f"layer{d}", 0.5 + 0.1 * d) for d in range(1, 5)] for i in range(n)}
    figure = figures.separability_curve({"demo": series, "resnet10_seeds": dict(list(series.items())[:2])})
    assert_readable(figure)
    drawn = sum(len(ax.get_lines()) - 1 for ax in figure.axes if ax.get_visible())  # less the chance line
    assert drawn == n + 2


@pytest.mark.parametrize("n", COUNTS)
def test_power_curve_and_importance_are_readable(n):
    verdicts = ["no_signal", "inconclusive", "signal", "signal_below_margin"]
    points = [figures.PowerPoint(i / n, 0.5 + 0.4 * i / n, 0.4 + 0.4 * i / n, 0.6 + 0.4 * i / n,
                                 verdicts[i % 4]) for i in range(n)]
    assert_readable(figures.power_curve(points, 0.65))
    assert_readable(figures.importance_bars({f"parameter_{i}": 1 / n for i in range(n)}))


def test_the_power_curve_leaves_the_leakage_pairs_cohort_out():
    """Found by a newcomer: the leak cohort (another model on another cohort size, S = 0) sat on the
    planted-signal power curve beside the null cohort. Cohorts whose study also split slices are
    controls of the pipeline, not points of the series."""
    from types import SimpleNamespace as NS

    from mgmt_audit.report.sections import power_section

    def cohort(name, strength, auc):
        return NS(cohort=name, strength=strength, control=False, verdict="inconclusive",
                  lead=NS(auc=auc, ci_low=auc - 0.1, ci_high=auc + 0.1))

    def config(cohort_name, leaked):
        return NS(group=NS(leaked=leaked, study=NS(cohort=cohort_name)))

    verdicts = NS(margin=0.65, cohorts=[cohort("null", 0.0, 0.52), cohort("signal", 1.0, 0.99),
                                        cohort("leak", 0.0, 0.59)],
                  configurations=[config("null", False), config("signal", False), config("leak", False),
                                  config("leak", True)])
    drawn = []
    with mock.patch.object(figures, "power_curve", side_effect=lambda points, margin: drawn.append(points)):
        with mock.patch("mgmt_audit.report.sections.figure_block", return_value=None):
            power_section(verdicts)
    assert [(p.strength, p.auc) for p in drawn[0]] == [(0.0, 0.52), (1.0, 0.99)]
