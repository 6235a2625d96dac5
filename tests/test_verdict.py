"""The verdict's rules, case by case, each with the input that decides it and the known right answer.

Calibration (size, power, P(no_signal) at the margin) is in ``test_verdict_calibration.py``.
"""

import json

import numpy as np
import pytest
from exact_scores import exact_auc_scores
from scipy import stats

from mgmt_audit.analysis.chance_loss import label_entropy
from mgmt_audit.analysis.verdict import (
    GIVEN,
    HELD_OUT_TEST,
    INCONCLUSIVE,
    NO_SIGNAL,
    SIGNAL,
    SIGNAL_BELOW_MARGIN,
    Evidence,
    ReportedAUC,
    Run,
    judge,
    min_null_trials,
)
from mgmt_audit.errors import AnalysisInputError

_exactly = exact_auc_scores


def _binormal(rng, n_pos, n_neg, auc):
    """Labels and scores with true AUC ``auc`` (binormal, equal variances)."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, rng.normal(size=y.size) + np.sqrt(2) * stats.norm.ppf(auc) * y


def _seeds(rng, n_pos, n_neg, auc, k, rho=0.5):
    """k runs on the same patients: a shared patient effect plus independent seed noise."""
    y, shared = _binormal(rng, n_pos, n_neg, auc)
    return [Run(y, np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=y.size)) for _ in range(k)]


def test_exactly_helper_hits_its_target():
    from mgmt_audit.analysis.auc import roc_auc

    for target in (0.5, 0.62, 0.7, 0.81):
        y, s = _exactly(target, 61, 56)
        assert roc_auc(y, s) == pytest.approx(target, abs=1 / (61 * 56))


def test_null_family_is_no_signal_with_the_margin_excluded_and_supporting_evidence():
    rng = np.random.default_rng(0)
    h = label_entropy(0.5)
    runs = _seeds(rng, 150, 150, 0.5, 5, rho=0.3)
    v = judge(Evidence("resnet10", runs=runs, design=HELD_OUT_TEST,
                       val_losses=[[0.8, h, h + 0.002, h]] * 5, positive_share=0.5,
                       probe_separability=0.53, control_separability=0.99))
    assert v.verdict == NO_SIGNAL
    assert v.ci_high < 0.65 and v.ci_low > 0.35
    assert v.bound_words == f"AUC >= 0.65 excluded (upper bound {v.ci_high:.2f})"
    assert "held-out test: mean AUC of 5 runs" in v.sentence and "(margin 0.65)" in v.sentence
    assert "5 of 5 runs' validation loss ends at the chance loss H(p) = 0.693" in v.supporting
    assert "final-layer separability 0.53 vs 0.99 on the MNIST control" in v.supporting
    assert v.estimate.n_runs == 5 and len(v.bimodality.dip_p) == 5


def test_planted_signal_is_signal_even_after_selection_among_forty():
    rng = np.random.default_rng(1)
    v = judge(Evidence("vit", runs=_seeds(rng, 40, 40, 0.85, 5), selection=40))
    assert v.verdict == SIGNAL
    assert v.test.p_value_adjusted <= 0.05 and v.ci_low > 0.5 and v.ci_high >= 0.65
    assert v.estimate.auc_adjusted < v.auc  # the winner's curse is corrected downwards


def test_small_real_effect_is_signal_below_margin():
    rng = np.random.default_rng(2)
    y, s = _binormal(rng, 1500, 1500, 0.56)
    v = judge(Evidence("big", runs=[Run(y, s)]))
    assert v.verdict == SIGNAL_BELOW_MARGIN
    assert 0.5 < v.ci_low and v.ci_high < 0.65
    assert "real and small" in v.reason


@pytest.mark.parametrize("auc, n", [(0.70, 10), (0.75, 8), (0.65, 15)])
def test_issue_cases_that_were_no_signal_are_inconclusive(auc, n):
    # the landed rule called each of these no_signal: 10/10 at 0.70, 8/8 at 0.75, 15/15 at 0.65
    v = judge(Evidence("small", runs=[Run(*_exactly(auc, n, n))]))
    assert v.verdict == INCONCLUSIVE
    assert v.bound_words.startswith("cannot exclude AUC up to")
    assert v.ci_high >= 0.65


def test_ten_patients_never_give_no_signal_even_at_chance():
    v = judge(Evidence("tiny", runs=[Run(*_exactly(0.5, 5, 5))]))
    assert v.verdict == INCONCLUSIVE and v.ci_high > 0.65


def test_inverted_signal_not_excluded_is_inconclusive_with_label_coding_reason():
    # AUC 0.42 on 30/30: not beyond chance, upper bound below 0.65, but AUC 0.35 (0.65 inverted) not excluded
    v = judge(Evidence("f", runs=[Run(*_exactly(0.42, 30, 30))]))
    assert v.ci_high < 0.65 and v.ci_low <= 0.35
    assert v.verdict == INCONCLUSIVE and "inverted signal" in v.reason and "label coding" in v.reason


def test_interval_wholly_below_chance_is_inconclusive_never_flipped():
    rng = np.random.default_rng(5)
    y, s = _binormal(rng, 60, 60, 0.2)
    v = judge(Evidence("f", runs=[Run(y, s)]))
    assert v.verdict == INCONCLUSIVE and "below 0.5 beyond its interval" in v.reason
    assert v.auc < 0.3 and v.ci_high < 0.5


def test_constant_predictions_are_inconclusive():
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    v = judge(Evidence("collapsed", runs=[Run(y, np.full(200, 0.5)), Run(y, np.full(200, 0.4))]))
    assert v.verdict == INCONCLUSIVE and "one value for all patients" in v.reason
    assert v.bimodality.dip_p == (None, None)


def test_failed_positive_control_blocks_no_signal():
    rng = np.random.default_rng(6)
    runs = _seeds(rng, 150, 150, 0.5, 3, rho=0.3)
    assert judge(Evidence("f", runs=runs)).verdict == NO_SIGNAL
    failed = judge(Evidence("f", runs=runs, control_separability=0.6))
    assert failed.verdict == INCONCLUSIVE and "positive control separated only 0.60" in failed.reason


def test_claim_best_of_ten_is_inconclusive_and_says_what_cannot_be_excluded():
    # the MGMT paper's best ResNet10 seed: AUC 0.59 on 61/56, the best of 10
    v = judge(Evidence("claim", reported=ReportedAUC(0.59, 61, 56, 0.585, 0.595), selection=10))
    assert v.verdict == INCONCLUSIVE
    assert v.test.p_value_adjusted > 0.3
    assert v.bound_words == "cannot exclude AUC up to 0.68"
    assert v.test.expected_best_null_auc == pytest.approx(0.583, abs=0.002)


def test_rounding_changes_the_verdict_and_is_said():
    # 0.6 printed with one digit stands for [0.55, 0.65]: below the margin at one end, not at the other
    v = judge(Evidence("claim", reported=ReportedAUC(0.6, 300, 300, 0.55, 0.65)))
    assert v.rounding.verdict_low == SIGNAL_BELOW_MARGIN and v.rounding.verdict_high == SIGNAL
    assert v.rounding.depends and "depends on rounding" in v.reason
    assert v.verdict == SIGNAL  # AUC >= 0.65 cannot be excluded for every value the digits allow
    same = judge(Evidence("claim", reported=ReportedAUC(0.6, 300, 300, 0.595, 0.605)))
    assert not same.rounding.depends and same.verdict == SIGNAL_BELOW_MARGIN


def test_selection_counts_configurations_not_the_seeds_of_one():
    rng = np.random.default_rng(7)
    runs = _seeds(rng, 60, 60, 0.6, 5)
    one = judge(Evidence("f", runs=runs))
    assert one.test.p_value_adjusted == one.test.p_value  # five seeds all reported: no adjustment
    assert one.estimate.auc_adjusted == one.auc
    ten = judge(Evidence("f", runs=runs, selection=10))
    assert ten.test.p_value_adjusted == pytest.approx(1 - (1 - one.test.p_value) ** 10)
    assert ten.ci_low < one.ci_low and ten.ci_high == one.ci_high


def test_mean_of_identical_seeds_equals_one_run():
    rng = np.random.default_rng(8)
    y, s = _binormal(rng, 40, 40, 0.7)
    one = judge(Evidence("f", runs=[Run(y, s)]))
    three = judge(Evidence("f", runs=[Run(y, s)] * 3))
    assert three.auc == one.auc and three.estimate.se == pytest.approx(one.estimate.se, rel=1e-9)
    assert three.p_value == pytest.approx(one.p_value, abs=0.01)  # Monte Carlo vs Mann–Whitney


def test_runs_are_aligned_by_patient_id_whatever_their_row_order():
    rng = np.random.default_rng(9)
    y, s = _binormal(rng, 30, 30, 0.7)
    ids = [f"{i:05d}" for i in range(60)]
    order = rng.permutation(60)
    a = Run(y, s, ids)
    b = Run(y[order], s[order], [ids[i] for i in order])
    v = judge(Evidence("f", runs=[a, b]))
    assert v.estimate.se == pytest.approx(judge(Evidence("f", runs=[a])).estimate.se, rel=1e-9)
    assert "on the same patients" in v.estimate.method


def test_runs_on_different_patients_get_the_conservative_interval():
    rng = np.random.default_rng(10)
    runs = [Run(*_binormal(rng, 30, 30, 0.7)), Run(*_binormal(rng, 35, 25, 0.7))]
    v = judge(Evidence("f", runs=runs))
    assert "different patients" in v.estimate.method
    singles = [judge(Evidence("f", runs=[r])).estimate.se for r in runs]
    assert v.estimate.se == pytest.approx(np.mean(singles))


def test_pipeline_null_enters_only_when_it_can_decide():
    rng = np.random.default_rng(11)
    runs = _seeds(rng, 40, 40, 0.8, 3)
    assert min_null_trials(0.05) == 19 and min_null_trials(0.05, 10) > 19
    null19 = judge(Evidence("f", runs=runs, pipeline_null=np.linspace(0.4, 0.6, 19)))
    assert null19.pipeline_null.usable and null19.pipeline_null.p_value == pytest.approx(0.05)
    assert null19.verdict == SIGNAL  # p = 1/20 = 0.05 decides at alpha 0.05 (p <= alpha)
    null10 = judge(Evidence("f", runs=runs, pipeline_null=np.linspace(0.4, 0.6, 10)))
    assert not null10.pipeline_null.usable and null10.verdict == SIGNAL
    assert "too few to decide" in null10.sentence and "needs 19 null trials, whose smallest p, 1 / (n + 1)" in null10.sentence


def test_pipeline_null_that_does_not_reject_blocks_signal():
    rng = np.random.default_rng(12)
    runs = _seeds(rng, 40, 40, 0.8, 3)
    high_null = judge(Evidence("f", runs=runs, pipeline_null=np.linspace(0.6, 0.95, 50)))
    assert high_null.pipeline_null.p_value > 0.05
    assert high_null.verdict == INCONCLUSIVE and "label-permutation null does not reject" in high_null.reason


def test_a_pipeline_null_at_its_floor_never_yields_no_signal():
    # a tight interval below the margin, not beyond chance by the evaluation test, but the observed AUC
    # exceeds every one of 10 null trials: p = 1/11 is only the floor of so few
    y, s = _exactly(0.52, 400, 400)
    free = judge(Evidence("f", runs=[Run(y, s)]))
    assert free.verdict == NO_SIGNAL
    floored = judge(Evidence("f", runs=[Run(y, s)], pipeline_null=np.linspace(0.40, 0.50, 10)))
    assert floored.verdict == INCONCLUSIVE and "run at least 19 null trials" in floored.reason
    enough = judge(Evidence("f", runs=[Run(y, s)], pipeline_null=np.linspace(0.40, 0.60, 40)))
    assert enough.verdict == NO_SIGNAL and not enough.pipeline_null.p_value <= enough.pipeline_null.floor
    one = judge(Evidence("f", runs=[Run(y, s)], pipeline_null=[0.45]))  # p = 1/2 says nothing either way
    assert one.pipeline_null.p_value == one.pipeline_null.floor == 0.5 and one.verdict == NO_SIGNAL


@pytest.mark.parametrize("n_null", [19, 20, 50])
def test_strong_signal_with_any_usable_null_count_is_signal(n_null):
    rng = np.random.default_rng(n_null)
    runs = _seeds(rng, 40, 40, 0.9, 3)
    null = 0.5 + 0.08 * rng.normal(size=n_null)
    v = judge(Evidence("f", runs=runs, pipeline_null=null))
    assert v.verdict == SIGNAL


def test_the_result_carries_one_set_of_numbers_for_every_output():
    rng = np.random.default_rng(13)
    v = judge(Evidence("f", runs=_seeds(rng, 40, 40, 0.7, 3), design=GIVEN, selection=4))
    d = v.to_dict()
    assert {"verdict", "auc", "ci_low", "ci_high", "margin", "p_value"} <= set(d)
    assert d["auc"] == v.estimate.auc and d["ci_high"] == v.estimate.ci_high
    assert json.loads(json.dumps(d))["estimate"]["run_aucs"] == list(v.estimate.run_aucs)
    assert f"[{v.ci_low:.3f}, {v.ci_high:.3f}]" in v.sentence and f"p = {v.p_value:.3g}" in v.sentence


@pytest.mark.parametrize("kwargs, message", [
    ({"margin": 0.5}, "margin must be in"), ({"margin": 1.2}, "margin must be in"),
    ({"alpha": 0.5}, "alpha must be in"), ({"selection": 0}, "selection"),
    ({"design": "whatever"}, "design must be one of"),
])
def test_bad_parameters_raise(kwargs, message):
    y = np.r_[np.ones(5, int), np.zeros(5, int)]
    with pytest.raises(AnalysisInputError, match=message):
        judge(Evidence("f", runs=[Run(y, np.arange(10.0))], **kwargs))


def test_no_auc_evidence_raises():
    with pytest.raises(AnalysisInputError, match="neither runs nor a reported AUC"):
        judge(Evidence("empty"))


def test_seed_offsets_do_not_make_chance_models_multimodal():
    # five chance-level seeds whose predictions sit at different base rates: pooled, the dip test
    # calls them multimodal; one run at a time, none is
    from mgmt_audit.analysis.bimodality import dip_test

    rng = np.random.default_rng(14)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    runs = [Run(y, rng.normal(0.3 + 0.1 * k, 0.02, 60)) for k in range(5)]
    assert dip_test(np.concatenate([r.scores for r in runs]))[1] < 0.05
    v = judge(Evidence("f", runs=runs))
    assert v.bimodality.n_multimodal == 0 and all(p > 0.05 for p in v.bimodality.dip_p)
    assert "predictions multimodal (dip test p < 0.05) in 0 of 5 run(s)" in v.supporting[0]


def test_selection_never_lowers_p_even_for_constant_predictions():
    # all predictions 0.5 after a 40-trial search: the landed code gave raw p 1 and adjusted p 0.503
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    v = judge(Evidence("f", runs=[Run(y, np.full(60, 0.5))], selection=40))
    assert v.test.p_value == 1.0 and v.test.p_value_adjusted == 1.0
    assert v.verdict == INCONCLUSIVE
