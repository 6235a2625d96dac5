"""Calibration of the verdict by simulation: its size under the null, P(no_signal) at the margin, power at
the printed detectable AUC, pooled cross-validation, and distinct permutations across null trials.

Each rate is estimated from enough seeded repetitions that the assertion would fail with probability
below 1e-3 under correct code (the tolerance is >= 3.3 binomial standard errors from the rate the rule
is built to have); the seeds only make runs reproducible.
"""

import numpy as np
import pytest
from scipy import stats

from mgmt_audit.analysis import nulls
from mgmt_audit.analysis.audit import audit_predictions
from mgmt_audit.analysis.auc import delong_covariance
from mgmt_audit.analysis.verdict import (
    NO_SIGNAL,
    SIGNAL,
    SIGNAL_BELOW_MARGIN,
    Evidence,
    Run,
    judge,
)
from mgmt_audit.train.seeding import permuted_labels

BEYOND = (SIGNAL, SIGNAL_BELOW_MARGIN)


def _shift(auc):
    """Binormal separation (equal variances) giving a true AUC of ``auc``."""
    return np.sqrt(2) * stats.norm.ppf(auc)


def _verdicts(rng, n_pos, n_neg, auc, reps, seeds=1, rho=0.5, **evidence):
    """Verdicts of ``reps`` simulated studies: ``seeds`` runs on the same patients, correlated ``rho``."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    out = []
    for _ in range(reps):
        shared = rng.normal(size=y.size)
        runs = [Run(y, (np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(size=y.size) if seeds > 1
                        else shared) + _shift(auc) * y) for _ in range(seeds)]
        out.append(judge(Evidence("sim", runs=runs, n_permutations=999, **evidence)).verdict)
    return np.array(out)


@pytest.mark.parametrize("n_pos, n_neg", [(61, 56), (30, 30)])
@pytest.mark.parametrize("seeds", [1, 5])
def test_size_of_a_positive_verdict_under_the_null(n_pos, n_neg, seeds):
    verdicts = _verdicts(np.random.default_rng(100 + n_pos + seeds), n_pos, n_neg, 0.5, 2500, seeds)
    rate = np.isin(verdicts, BEYOND).mean()
    assert 0.03 <= rate <= 0.07, rate


@pytest.mark.parametrize("n_pos, n_neg", [(61, 56), (30, 30), (150, 150)])
@pytest.mark.parametrize("seeds", [1, 5])
def test_no_signal_at_the_margin_is_rare(n_pos, n_neg, seeds):
    verdicts = _verdicts(np.random.default_rng(200 + n_pos + seeds), n_pos, n_neg, 0.65, 1000, seeds)
    assert (verdicts == NO_SIGNAL).mean() <= 0.07


def test_no_signal_on_ten_patients_per_class_at_auc_070_is_rare():
    verdicts = _verdicts(np.random.default_rng(300), 10, 10, 0.7, 600)
    assert (verdicts == NO_SIGNAL).mean() <= 0.05


@pytest.mark.parametrize("selection", [1, 10])
def test_power_at_the_printed_detectable_auc_is_eighty_percent(selection):
    alpha_per = 1 - 0.95 ** (1 / selection)
    detectable = nulls.detectable_auc(61, 56, alpha_per, 0.8)
    rng = np.random.default_rng(400 + selection)
    verdicts = _verdicts(rng, 61, 56, detectable, 2000, selection=selection)
    assert judge(Evidence("x", runs=[Run(*_one(rng, 61, 56, 0.6))], selection=selection)).detectable_auc \
        == pytest.approx(detectable)
    assert 0.75 <= np.isin(verdicts, BEYOND).mean() <= 0.85


def _one(rng, n_pos, n_neg, auc):
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, rng.normal(size=y.size) + _shift(auc) * y


def test_five_fold_cross_validation_pools_out_of_fold_predictions():
    # 260 patients, 5 folds, true AUC 0.62: treating folds as seeds of one 52-patient set lost this
    rng = np.random.default_rng(500)
    n = 260
    ids = [f"{i:05d}" for i in range(n)]
    hits = 0
    reps = 300
    for _ in range(reps):
        y = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
        folds = rng.permutation(np.arange(n) % 5)
        score = rng.normal(size=n) + _shift(0.62) * y + 0.1 * folds  # each fold model slightly shifted
        result = audit_predictions({"id": ids, "label": y, "prob": score, "fold": folds}, id_col="id",
                                   fold_col="fold")
        hits += result.verdict.verdict in BEYOND
        assert result.verdict.estimate.n_pos + result.verdict.estimate.n_neg == n
    assert hits / reps >= 0.85


def _ridge_scores(x_train, y_train, x_val, penalty):
    """A stand-in model: ridge regression of the 0/1 label on the features."""
    centred = y_train - y_train.mean()
    w = np.linalg.solve(x_train.T @ x_train + penalty * np.eye(x_train.shape[1]), x_train.T @ centred)
    return x_val @ w


def test_distinct_null_permutations_keep_the_pipeline_null_calibrated():
    # configurations that differ only in a penalty, one training seed: with one shared permutation every
    # null trial repeats the same fit and the permutation p collapses to its floor or to 1
    rng = np.random.default_rng(600)
    penalties = (0.1, 1.0, 10.0, 100.0)
    n_null, reps, rejected = 19, 1500, 0
    y_train = np.r_[np.ones(30, int), np.zeros(30, int)]
    y_val = np.r_[np.ones(20, int), np.zeros(20, int)]
    for rep in range(reps):
        x_train, x_val = rng.normal(size=(60, 5)), rng.normal(size=(40, 5))
        real = _ridge_scores(x_train, y_train, x_val, penalties[rep % 4])
        null_scores = [
            _ridge_scores(x_train, np.asarray(permuted_labels(y_train, seed=rep, null_index=k)[0]), x_val,
                          penalties[k % 4])
            for k in range(n_null)
        ]
        null_aucs, _ = delong_covariance(y_val, np.vstack(null_scores))
        v = judge(Evidence("f", runs=[Run(y_val, real)], pipeline_null=null_aucs))
        rejected += v.pipeline_null.p_value_adjusted <= 0.05
    assert rejected / reps <= 0.07
