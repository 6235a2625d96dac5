"""Per-family verdicts: null -> no_signal, planted signal -> signal, the rest inconclusive."""

import numpy as np
import pytest

from mgmt_audit.analysis.chance_loss import label_entropy
from mgmt_audit.analysis.verdict import (
    INCONCLUSIVE,
    NO_SIGNAL,
    SIGNAL,
    FamilyEvidence,
    PowerFigure,
    ReportedAUC,
    judge,
)
from mgmt_audit.errors import AnalysisInputError


def _runs(rng, n_per_class, d, seeds):
    """Runs of one family on the same patients; scores separate the classes by ``d`` sd."""
    y = np.r_[np.ones(n_per_class, int), np.zeros(n_per_class, int)]
    return [(y, rng.normal(size=y.size) + d * y) for _ in range(seeds)]


def test_null_family_gets_no_signal_with_the_detectable_effect_stated():
    rng = np.random.default_rng(0)
    h = label_entropy(0.5)
    verdict = judge(
        FamilyEvidence(
            "resnet10",
            runs=_runs(rng, 60, 0.0, 10),
            val_losses=[[0.8, h, h + 0.002, h] for _ in range(10)],
            positive_share=0.5,
            probe_separability=0.53,
            control_separability=0.99,
        )
    )
    assert verdict.verdict == NO_SIGNAL
    assert "over 10 seeds" in verdict.sentence
    assert "10/10 runs' validation loss ends at the chance loss 0.693" in verdict.sentence
    assert "0.53 vs 0.99 on the MNIST control" in verdict.sentence
    assert "would be detected" in verdict.sentence
    assert 0.6 < verdict.numbers["detectable_auc"] < 0.75


def test_planted_signal_gets_signal():
    rng = np.random.default_rng(1)
    verdict = judge(FamilyEvidence("vit", runs=_runs(rng, 40, 1.5, 5), trials_tried=40))
    assert verdict.verdict == SIGNAL
    assert verdict.numbers["ci_low"] > 0.5
    assert verdict.numbers["p_value_selection_adjusted"] < 0.05


def test_null_families_are_rarely_called_signal():
    rng = np.random.default_rng(2)
    calls = [judge(FamilyEvidence("f", runs=_runs(rng, 30, 0.0, 1))).verdict for _ in range(300)]
    assert calls.count(SIGNAL) / len(calls) <= 0.06
    assert calls.count(NO_SIGNAL) / len(calls) >= 0.9


def test_best_of_n_claim_is_inconclusive_not_signal():
    # the paper's best ResNet10 seed: AUC 0.59 on 61/56 after 10 seeds
    verdict = judge(FamilyEvidence("claim", reported=ReportedAUC(0.59, 61, 56), trials_tried=10))
    assert verdict.verdict == INCONCLUSIVE
    assert verdict.numbers["p_value"] < 0.05 < verdict.numbers["p_value_selection_adjusted"]
    assert "not after" in verdict.reason


def test_permutation_null_is_used_when_given():
    rng = np.random.default_rng(3)
    runs = _runs(rng, 40, 1.5, 3)
    null = np.linspace(0.4, 0.6, 99)
    verdict = judge(FamilyEvidence("cnn", runs=runs, null_aucs=null))
    assert verdict.numbers["p_value"] == pytest.approx(0.01)
    assert "permutation null of 99 trials" in verdict.sentence
    assert verdict.verdict == SIGNAL


def test_too_few_cases_is_inconclusive_unless_power_was_shown():
    rng = np.random.default_rng(4)
    runs = _runs(rng, 5, 0.0, 3)
    assert judge(FamilyEvidence("tiny", runs=runs)).verdict == INCONCLUSIVE
    powered = judge(FamilyEvidence("tiny", runs=runs, power=PowerFigure(0.85, 0.5)))
    assert powered.verdict == NO_SIGNAL
    assert "AUC >= 0.85 detected at planted strength 0.5" in powered.sentence


def test_failed_positive_control_and_below_chance_are_inconclusive():
    rng = np.random.default_rng(5)
    null_runs = _runs(rng, 60, 0.0, 3)
    failed = judge(FamilyEvidence("f", runs=null_runs, control_separability=0.6))
    assert failed.verdict == INCONCLUSIVE and "control" in failed.reason
    inverted = judge(FamilyEvidence("f", runs=_runs(rng, 60, -1.5, 3)))
    assert inverted.verdict == INCONCLUSIVE and "below chance" in inverted.reason
    assert inverted.numbers["auc"] < 0.3  # never flipped


def test_short_loss_curves_are_reported_not_fatal():
    rng = np.random.default_rng(6)
    verdict = judge(
        FamilyEvidence("f", runs=_runs(rng, 30, 0.0, 2), val_losses=[[0.7, 0.69]] * 2,
                       positive_share=0.5)
    )
    assert "validation loss curves too short" in verdict.sentence


def test_no_auc_evidence_raises():
    with pytest.raises(AnalysisInputError, match="neither runs nor a reported AUC"):
        judge(FamilyEvidence("empty"))
