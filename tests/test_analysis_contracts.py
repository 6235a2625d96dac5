"""Contracts of analysis/ that no other test pinned (found by mutation testing, tools/mutation.py): the
rules at their exact edges, the errors naming their parameter, and the keys of the JSON and the
columns of the tables that scripts and readers rely on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mgmt_audit.analysis.audit import audit_predictions, format_audit
from mgmt_audit.analysis.auc import bootstrap_ci, delong_variance
from mgmt_audit.analysis.claims.audit import audit_claim
from mgmt_audit.analysis.claims.inference import clopper_pearson
from mgmt_audit.analysis.claims.literature import audit_literature, format_literature, load_claims
from mgmt_audit.analysis.claims.metrics import binary_scores
from mgmt_audit.analysis.claims.text import format_claim, format_review
from mgmt_audit.analysis.nulls import null_band, permutation_null
from mgmt_audit.analysis.probes import layer_separability
from mgmt_audit.analysis.verdict import INCONCLUSIVE, NO_SIGNAL, decide
from mgmt_audit.errors import AnalysisInputError


def test_the_null_band_is_centred_on_half_with_the_mann_whitney_spread():
    # Mann–Whitney: var(U / (n1 n0)) = (n1 + n0 + 1) / (12 n1 n0) under the null
    sd = np.sqrt((30 + 50 + 1) / (12 * 30 * 50))
    low, high = null_band(30, 50, alpha=0.1)
    assert (low, high) == pytest.approx((0.5 - stats.norm.ppf(0.95) * sd, 0.5 + stats.norm.ppf(0.95) * sd))


def test_a_permutation_null_without_an_observed_auc_has_no_p_value():
    null = np.linspace(0.4, 0.6, 99)
    assert permutation_null(null).p_value is None
    assert permutation_null(null, observed=0.7).p_value == pytest.approx(1 / 100)


def test_an_upper_bound_of_exactly_half_is_not_worse_than_chance():
    # 'worse than chance' needs the whole interval below 0.5; at an upper bound of 0.5 with the lower
    # above 1 - margin the margin is excluded both ways: no_signal
    outcome, reason = decide(0.6, 0.6, 0.40, 0.50, margin=0.65)
    assert outcome == NO_SIGNAL, reason
    assert decide(0.6, 0.6, 0.40, 0.4999, margin=0.65)[0] == INCONCLUSIVE


def test_a_layer_whose_every_feature_is_constant_is_dead_even_when_features_differ():
    y = np.arange(60) % 2
    (probe,) = layer_separability({"flat": np.tile(np.arange(4.0), (60, 1))}, y)
    assert (probe.knn_accuracy, probe.linear_auc) == (0.5, 0.5)


def test_a_probe_takes_two_cases_of_a_class_and_refuses_one():
    features = {"flat": np.zeros((10, 3))}
    layer_separability(features, [1, 1] + [0] * 8)
    with pytest.raises(AnalysisInputError, match="at least 2 of each"):
        layer_separability(features, [1] + [0] * 9)


def test_clopper_pearson_refuses_negative_counts():
    with pytest.raises(AnalysisInputError, match="0 <= k <= n"):
        clopper_pearson(-1, 10, 0.05)


def test_audit_errors_name_the_parameter():
    with pytest.raises(AnalysisInputError) as info:
        audit_predictions({"prob": [0.1, 0.9]}, label_col="truth")
    assert info.value.parameter == "label_col"
    with pytest.raises(AnalysisInputError) as info:
        audit_claim({"auc": "0.7"}, n_pos=30, n_neg=30, trials_tried=0)
    assert info.value.parameter == "trials_tried"


def test_the_audit_table_has_its_documented_columns():
    y = np.r_[np.ones(20, int), np.zeros(20, int)]
    text = format_audit(audit_predictions({"label": y, "prob": np.linspace(0, 1, 40)}))
    header = next(line for line in text.splitlines() if line.startswith("run"))
    assert header.split()[:5] == ["run", "n", "pos", "neg", "AUC"]


def test_an_auc_whose_verdict_depends_on_the_unknown_split_says_so():
    r = audit_claim({"auc": "0.70"}, n=60)
    assert r.verdict == INCONCLUSIVE and r.split_search.covers_all is False
    assert r.bound_words.endswith("at the balanced split; less can be excluded at unequal splits")
    assert r.metric_judged == r.to_dict()["metric_judged"] == "AUC (as reported)"
    lo, hi = r.split_search.band
    assert 1 <= lo < 30 < hi <= 59


def test_a_split_band_stops_at_the_last_split_with_one_case_a_side():
    r = audit_claim({"auc": "0.99"}, n=1000)
    assert r.split_search.covers_all and r.split_search.band == (1, 999)


def test_the_claim_json_keys():
    r = audit_claim({"sensitivity": "0.9", "specificity": "0.8", "accuracy": "0.85", "auc": "0.9"},
                    n_pos=40, n_neg=40)
    d = r.to_dict()
    assert {k: d["inputs"][k] for k in ("n_pos", "n_neg", "n", "trials_tried")} == {
        "n_pos": 40, "n_neg": 40, "n": 80, "trials_tried": 1}
    assert list(d["consistency"]) == ["consistent", "reason", "identities", "checks"]
    check = d["consistency"]["checks"][0]
    assert {"n_matrices", "matrices", "splits", "n_splits"} <= set(check)
    assert check["n_matrices"] >= len(check["matrices"]) >= 1 and check["splits"] == [[40, 40]]
    assert "consistent: true" in format_claim(r)


def test_an_impossible_claim_names_its_nearest_matrix_and_what_it_breaks():
    r = audit_claim({"sensitivity": "0.91", "specificity": "0.80", "accuracy": "0.70"}, n_pos=40, n_neg=40)
    assert r.consistent is False and "consistent: false" in format_claim(r)
    nearest = [c["nearest"] for c in r.to_dict()["consistency"]["checks"] if "nearest" in c]
    assert nearest and all(n["breaks"] for n in nearest)


def test_the_bootstrap_interval_is_equal_tailed_with_delong_width():
    # at 300 / 300 the percentile interval is as wide as DeLong's normal one, z 1.96 a side on average
    # (over seeds 1.94-1.97 at 20,000 resamples); a tail at the wrong level moves it past 2.0
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(300, int), np.zeros(300, int)]
    s = rng.normal(size=600) + 0.95 * y
    se = np.sqrt(delong_variance(y, s))
    auc, low, high = bootstrap_ci(y, s, n_boot=20_000, alpha=0.05)
    assert (high - low) / (2 * se) == pytest.approx(stats.norm.ppf(0.975), abs=0.06)
    assert low < auc < high


def test_unknown_averagings_and_impossible_searches_name_their_parameter():
    with pytest.raises(AnalysisInputError, match=r"average must be one of binary, ") as info:
        audit_claim({"sensitivity": "0.9"}, n_pos=30, n_neg=30, average="median")
    assert info.value.parameter == "average"
    with pytest.raises(AnalysisInputError, match=r"^average must be one of \(") as info:
        binary_scores(np.array([3]), np.array([3]), 5, 5, "median")
    assert info.value.parameter == "average"
    with pytest.raises(AnalysisInputError, match="too many without the class split") as info:
        audit_claim({"sensitivity": "0.9", "specificity": "0.8"}, n=100_000)
    assert info.value.parameter == "n"


CLAIM = """
[[claim]]
{id}study = "Doe"
marker = "MGMT"
cohort = "test"
quoted_from = "Table 2"
metrics = {{ accuracy = "0.60" }}
evaluation = "hold-out"
unit = "patient"
classes = 3
class_sizes = [20, 20, 20]
"""


def test_literature_claims_without_a_paper_table_and_errors_naming_the_claim(tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text(CLAIM.format(id='id = "x1"\n'))
    (claim,) = load_claims(path)
    assert (claim.paper, claim.file) == ("", "")
    (row,) = audit_literature([claim])
    assert row.result.inputs.class_sizes == (20, 20, 20)
    assert "consistent = arithmetically possible, never proof of a sound evaluation)" in format_literature([row])
    path.write_text(CLAIM.format(id='id = "x1"\n').replace('study = "Doe"\n', ""))
    with pytest.raises(AnalysisInputError, match=r"claims.toml, claim x1: missing key 'study'"):
        load_claims(path)
    path.write_text(CLAIM.format(id=""))
    with pytest.raises(AnalysisInputError, match=r"claims.toml, claim 1: missing key 'id'"):
        load_claims(path)


def test_a_search_too_large_for_every_matrix_keeps_what_the_printed_accuracy_allows():
    # 600 cases, split unknown: ~3.6e7 matrices, beyond the full grid, so only those whose accuracy
    # prints as 0.80 are searched: tp + tn in [480, 486) truncated, [477, 483] rounded (ties either way)
    r = audit_claim({"accuracy": "0.80", "sensitivity": "0.85"}, n=600)
    checks = {c.convention: c for c in r.consistency.checks if c.average == "binary"}
    assert set((checks["truncated"].tp + checks["truncated"].tn).tolist()) == set(range(480, 486))
    assert set(range(478, 483)) <= set((checks["rounded"].tp + checks["rounded"].tn).tolist()) <= set(range(477, 484))
    assert {c.method for c in checks.values()} == {"exact enumeration of every confusion matrix at every class "
                                                   "split with the printed accuracy (no nearest matrix: too "
                                                   "many to search)"}


def test_a_mean_of_folds_of_metrics_mlscorecheck_does_not_cover_is_not_checked_and_says_which():
    r = audit_claim({"f1": "0.80"}, n_pos=40, n_neg=40, folds=5)
    unchecked = [c for c in r.consistency.checks if c.aggregation.startswith("mean of fold scores")]
    assert {(c.average, c.convention) for c in unchecked} == {
        (a, c) for a in ("binary", "binary_other") for c in ("rounded", "truncated")}
    assert all(c.status == "not checked" and c.unchecked == ("f1",) and c.method == "not checkable"
               and c.note.startswith("F1 not checked as a mean of folds") for c in unchecked)


def test_the_printed_claim_lists_what_fits_and_adds_no_selection_to_one_trial():
    r = audit_claim({"sensitivity": "0.9", "specificity": "0.8", "accuracy": "0.85"}, n_pos=40, n_neg=40)
    text = format_claim(r)
    assert any(line.startswith("    fits ") and line.endswith(" matrices") for line in text.splitlines())
    (fisher,) = [line for line in text.splitlines() if "chance (Fisher exact, one-sided)" in line]
    assert fisher.split(": p = ")[1] == f"{r.operating.p_value:.3g}"
    auc = audit_claim({"auc": "0.80"}, n_pos=40, n_neg=40)
    assert f"p = {auc.auc_verdict.test.p_value_adjusted:.2g} against chance. " in format_review(auc)
