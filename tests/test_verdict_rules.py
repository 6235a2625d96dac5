"""Every rule of the verdict (the package docstring of ``mgmt_audit.analysis``, the README's table) at
its edge, with the outcome the written rule gives: ``decide`` over plain numbers, then ``judge`` and
``audit`` on predictions built by counting, where the right answer is known without the code.

Each case sits on one side of one condition, so removing or inverting that condition (``<=`` for
``<``, a dropped adjustment, the first run for the mean) changes the outcome asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest
from exact_scores import exact_auc_scores
from scipy import stats
from sklearn.metrics import roc_auc_score

from mgmt_audit.analysis.audit import audit_predictions
from mgmt_audit.analysis.verdict import (
    CONTROL_MIN,
    INCONCLUSIVE,
    NO_SIGNAL,
    SIGNAL,
    SIGNAL_BELOW_MARGIN,
    Evidence,
    PipelineNull,
    Run,
    decide,
    judge,
    min_null_trials,
)

MARGIN = 0.65


def _null(n: int, p: float) -> PipelineNull:
    """A retrained label-permutation null of ``n`` trials whose observed p is ``p``, without selection;
    usable when its floor 1 / (n + 1) can reach alpha 0.05, from 19 trials on (checked below)."""
    return PipelineNull(n, p, p, 1 / (n + 1), n >= 19, 19, 0.5, 0.4, 0.6)


# (p, p adjusted, lower bound, upper bound, keyword arguments) -> outcome, a phrase of the reason
RULES = [
    # beyond chance: adjusted p <= alpha and lower bound > 0.5
    ((0.01, 0.01, 0.55, 0.75, {}), SIGNAL, "is not excluded"),
    ((0.05, 0.05, 0.51, 0.75, {}), SIGNAL, "beyond chance"),  # p = alpha rejects (p <= alpha)
    ((0.0501, 0.0501, 0.51, 0.75, {}), INCONCLUSIVE, "not beyond chance (p = 0.0501)"),
    ((0.01, 0.01, 0.50, 0.75, {}), INCONCLUSIVE, "lower bound 0.500 does not exceed 0.5"),
    ((0.01, 0.01, 0.50, 0.60, {}), NO_SIGNAL, "lower bound 0.500 does not exceed 0.5"),
    # the upper bound against the margin
    ((0.01, 0.01, 0.52, 0.649, {}), SIGNAL_BELOW_MARGIN, "upper bound 0.649 lies below the margin"),
    ((0.01, 0.01, 0.52, 0.65, {}), SIGNAL, "AUC of 0.65 or more is not excluded"),  # = margin: not below
    ((0.40, 0.40, 0.40, 0.649, {}), NO_SIGNAL, "AUC of 0.65 or more is excluded (upper bound 0.649"),
    ((0.40, 0.40, 0.40, 0.65, {}), INCONCLUSIVE, "an AUC up to 0.650 cannot be excluded"),
    # the inverted signal: the lower bound must exceed 1 - margin
    ((0.90, 0.90, 0.351, 0.60, {}), NO_SIGNAL, "excluded"),
    ((0.90, 0.90, 0.35, 0.60, {}), INCONCLUSIVE, "an inverted signal (AUC down to 0.350"),
    # worse than chance, collapsed models
    ((0.999, 0.999, 0.20, 0.499, {}), INCONCLUSIVE, "below 0.5 beyond its interval"),
    ((0.01, 0.01, 0.55, 0.75, {"constant": True}), INCONCLUSIVE, "one value for all patients"),
    # selection: the adjusted p decides, the raw one is only reported
    ((0.03, 0.26, 0.45, 0.60, {"selection": 10}), NO_SIGNAL,
     "beyond chance before the selection adjustment (p = 0.03), not after"),
    ((0.03, 0.26, 0.45, 0.70, {"selection": 10}), INCONCLUSIVE, "cannot be excluded"),
    # the positive control blocks no_signal below CONTROL_MIN, never signal
    ((0.40, 0.40, 0.40, 0.60, {"control_separability": CONTROL_MIN - 0.01}), INCONCLUSIVE,
     "positive control separated only 0.89"),
    ((0.40, 0.40, 0.40, 0.60, {"control_separability": CONTROL_MIN}), NO_SIGNAL, "excluded"),
    ((0.01, 0.01, 0.55, 0.75, {"control_separability": 0.5}), SIGNAL, "beyond chance"),
    # the retrained label-permutation null: it must reject too when it can decide
    ((0.01, 0.01, 0.55, 0.75, {"null": _null(19, 0.10)}), INCONCLUSIVE, "null does not reject chance"),
    ((0.01, 0.01, 0.55, 0.75, {"null": _null(19, 0.05)}), SIGNAL, "beyond chance"),
    ((0.01, 0.01, 0.55, 0.75, {"null": _null(18, 0.50)}), SIGNAL, "beyond chance"),  # too few: silent
    ((0.40, 0.40, 0.40, 0.60, {"null": _null(19, 0.05)}), INCONCLUSIVE, "the two nulls disagree"),
    ((0.40, 0.40, 0.40, 0.60, {"null": _null(19, 0.50)}), NO_SIGNAL, "excluded"),
    # a null at a floor of at most 0.1 (9 to 18 trials, all beaten) blocks no_signal; 8 trials do not
    ((0.40, 0.40, 0.40, 0.60, {"null": _null(10, 1 / 11)}), INCONCLUSIVE, "run at least 19 null trials"),
    ((0.40, 0.40, 0.40, 0.60, {"null": _null(9, 1 / 10)}), INCONCLUSIVE, "exceeds all 9 retrained null"),
    ((0.40, 0.40, 0.40, 0.60, {"null": _null(8, 1 / 9)}), NO_SIGNAL, "excluded"),
    ((0.40, 0.40, 0.40, 0.60, {"null": _null(10, 2 / 11)}), NO_SIGNAL, "excluded"),
]


@pytest.mark.parametrize("numbers, outcome, phrase", RULES)
def test_decide_follows_the_written_rules_at_each_edge(numbers, outcome, phrase):
    p, p_adjusted, low, high, kwargs = numbers
    label, reason = decide(p, p_adjusted, low, high, margin=MARGIN, **kwargs)
    assert (label, phrase in reason) == (outcome, True), reason


def test_the_margin_and_alpha_are_the_callers():
    # at margin 0.8 an upper bound of 0.7 excludes it; at alpha 0.01 a p of 0.02 is not beyond chance
    assert decide(0.01, 0.01, 0.55, 0.70, margin=0.8)[0] == SIGNAL_BELOW_MARGIN
    assert decide(0.02, 0.02, 0.55, 0.70, margin=0.65, alpha=0.01)[0] == INCONCLUSIVE
    assert decide(0.40, 0.40, 0.19, 0.70, margin=0.8)[0] == INCONCLUSIVE  # 0.19 <= 1 - 0.8: inverted not excluded
    assert decide(0.40, 0.40, 0.21, 0.70, margin=0.8)[0] == NO_SIGNAL


@pytest.mark.parametrize("selection, needed", [(1, 19), (2, 39), (10, 195)])
def test_the_pipeline_null_needs_the_trials_whose_floor_reaches_the_sidak_level(selection, needed):
    # 1 / (n + 1) <= 1 - 0.95 ** (1 / N): n >= 18.5 alone, 38.5 among 2, 194.5 among 10
    assert min_null_trials(0.05, selection) == needed
    y, s = exact_auc_scores(0.9, 40, 40)
    below = judge(Evidence("f", runs=[Run(y, s)], selection=selection, pipeline_null=np.full(needed - 1, 0.5)))
    enough = judge(Evidence("f", runs=[Run(y, s)], selection=selection, pipeline_null=np.full(needed, 0.5)))
    assert not below.pipeline_null.usable and enough.pipeline_null.usable
    assert enough.pipeline_null.p_value == pytest.approx(1 / (needed + 1))
    assert enough.pipeline_null.needed == needed


def test_auc_060_on_61_56_rejecting_chance_with_a_lower_bound_below_half_is_inconclusive():
    # the Mann–Whitney test rejects (p 0.029) but DeLong's 90 % interval reaches below 0.5: not beyond
    # chance, and AUC 0.65 is not excluded either, so nothing is decided
    y, s = exact_auc_scores(0.6, 61, 56)
    v = judge(Evidence("f", runs=[Run(y, s)]))
    assert v.p_value < 0.05 and v.ci_low <= 0.5 < v.ci_high
    assert v.verdict == INCONCLUSIVE
    assert v.reason.startswith(f"the test rejects chance but the lower bound {v.ci_low:.3f} does not exceed 0.5")
    assert v.bound_words == f"cannot exclude AUC up to {v.ci_high:.2f}"


@pytest.mark.parametrize("seed", range(3))
def test_ten_near_identical_seeds_are_judged_like_one_run_not_ten_independent_ones(seed):
    # ten seeds that differ by a little noise carry the information of about one run: their mean
    # (AUC about 0.596 on 61/56) gets one run's interval, which reaches below 0.5. Seeds treated as
    # independent shrink it by sqrt(10) and called this signal.
    y, s = exact_auc_scores(0.6, 61, 56)
    rng = np.random.default_rng(seed)
    runs = [Run(y, s + rng.normal(0.0, 1.0, s.size)) for _ in range(10)]
    one = judge(Evidence("one", runs=[Run(y, s)]))
    ten = judge(Evidence("ten", runs=runs))
    assert ten.verdict == INCONCLUSIVE and ten.ci_low <= 0.5
    assert ten.estimate.se == pytest.approx(one.estimate.se, rel=0.1)


def test_the_seed_mean_interval_covers_the_true_auc_ninety_percent_of_the_time():
    # 400 simulated studies of 10 strongly correlated seeds (rho 0.9) on 60 / 60 patients, true AUC
    # 0.7 for every seed: the two-sided 90 % interval must cover 0.7 about 90 % of the time (0.80 and
    # 0.97 are more than 4.5 binomial standard errors away). Seeds taken as independent cover ~40 %.
    rng = np.random.default_rng(2024)
    y = np.r_[np.ones(60, int), np.zeros(60, int)]
    shift = np.sqrt(2) * stats.norm.ppf(0.7)
    covered = 0
    for _ in range(400):
        shared = rng.normal(size=y.size)
        runs = [Run(y, np.sqrt(0.9) * shared + np.sqrt(0.1) * rng.normal(size=y.size) + shift * y)
                for _ in range(10)]
        v = judge(Evidence("sim", runs=runs, n_permutations=9))
        covered += v.ci_low <= 0.7 <= v.ci_high
    assert 0.80 <= covered / 400 <= 0.97


def test_the_mean_over_seeds_is_the_mean_of_each_seeds_auc():
    y, s = exact_auc_scores(0.7, 30, 30)
    _, t = exact_auc_scores(0.9, 30, 30)
    v = judge(Evidence("f", runs=[Run(y, s), Run(y, t)]))
    assert v.estimate.run_aucs == pytest.approx((roc_auc_score(y, s), roc_auc_score(y, t)))
    assert v.auc == pytest.approx((roc_auc_score(y, s) + roc_auc_score(y, t)) / 2)


def _table(runs: dict[str, tuple[np.ndarray, np.ndarray]], split: str = "test", first_id: int = 0) -> dict:
    """Columns of a prediction file: one row per patient and run."""
    table: dict[str, list] = {"id": [], "label": [], "prob": [], "seed": [], "split": []}
    for name, (y, s) in runs.items():
        table["id"] += [f"{first_id + i:05d}" for i in range(y.size)]
        table["label"] += y.tolist()
        table["prob"] += s.tolist()
        table["seed"] += [name] * y.size
        table["split"] += [split] * y.size
    return table


def test_audit_pools_runs_on_the_same_patients_by_their_mean_auc():
    y, s = exact_auc_scores(0.6, 40, 40)
    _, t = exact_auc_scores(0.8, 40, 40)
    result = audit_predictions(_table({"a": (y, s), "b": (y, t)}), id_col="id", run_col="seed")
    assert [r.auc for r in result.runs] == pytest.approx([roc_auc_score(y, s), roc_auc_score(y, t)])
    assert result.verdict.auc == pytest.approx(0.7, abs=1 / 1600)
    assert result.pooling == "2 runs on the same patients (matched by patient ID): mean AUC, predictions"


def test_audit_eval_split_judges_only_that_splits_rows():
    # validation rows separate perfectly (the search tuned on them); the test rows sit at AUC 0.5 on
    # other patients: judged on test they are no_signal, with the validation rows mixed in signal
    val = _table({"s": exact_auc_scores(1.0, 60, 60)}, split="val", first_id=1000)
    test = _table({"s": exact_auc_scores(0.5, 150, 150)}, split="test")
    both = {k: val[k] + test[k] for k in val}
    judged = audit_predictions(both, id_col="id", split_col="split", eval_split="test")
    alone = audit_predictions(test, id_col="id")
    assert judged.verdict.verdict == alone.verdict.verdict == NO_SIGNAL
    assert judged.verdict.auc == pytest.approx(0.5, abs=1e-3)
    assert (judged.verdict.estimate.n_pos, judged.verdict.estimate.n_neg) == (150, 150)
    assert audit_predictions(both, id_col="id", split_col="split").verdict.verdict == SIGNAL
    assert judged.leakage.checked and judged.leakage.n_leaked == 0
