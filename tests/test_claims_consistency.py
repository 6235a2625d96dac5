"""Are published numbers arithmetically possible together? The claims of issue 11 with their known
answers (hand-checked counts), and the enumeration against scikit-learn and mlscorecheck."""

import logging

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from mgmt_audit.analysis.claims.consistency import MEAN_ANY, MEAN_STRATIFIED, POOLED, check_consistency
from mgmt_audit.analysis.claims.metrics import AVERAGES, binary_scores, multiclass_micro_scores
from mgmt_audit.analysis.reported import parse_proportion

P = parse_proportion


def _claim(**values):
    return {k: P(v) for k, v in values.items()}


def test_the_1p19q_claim_is_impossible_under_every_averaging_and_convention():
    # Liu et al.: F1 96.37 %, precision 97.46 %, recall 96.34 % on 125 codeleted / 31 not codeleted
    c = check_consistency(_claim(f1="96.37%", precision="97.46%", sensitivity="96.34%"), n_pos=125, n_neg=31,
                          averages=AVERAGES)
    assert c.consistent is False
    assert {(x.average, x.convention) for x in c.checks} == {(a, v) for a in AVERAGES for v in ("rounded", "truncated")}
    assert all(x.status == "fails" for x in c.checks)
    # not even at ten times the rounding tolerance (half a unit): every nearest matrix misses by more
    assert min(x.nearest.worst_miss for x in c.checks) > 10 * 0.5
    # recall alone is unattainable: k/125, k/31 (the other class) and k/156 (micro) never print as 96.34 %
    alone = check_consistency(_claim(sensitivity="96.34%"), n_pos=125, n_neg=31,
                              averages=("binary", "binary_other", "micro"))
    assert alone.consistent is False
    # and the harmonic mean of the stated precision and recall is 96.90 %, not 96.37 %
    assert 2 * 0.9746 * 0.9634 / (0.9746 + 0.9634) == pytest.approx(0.9690, abs=5e-5)


def test_yogananda_pooled_counts_fit_only_163_84_and_only_if_truncated():
    c = check_consistency(_claim(accuracy="94.73%", sensitivity="96.31%", specificity="91.66%"), n=247, folds=3)
    pooled = {x.convention: x for x in c.checks if x.aggregation == POOLED}
    assert pooled["rounded"].feasible is False
    assert pooled["truncated"].splits == ((163, 84),)
    assert [m.text() for m in pooled["truncated"].matrices()] == ["TP 157 FN 6 TN 77 FP 7 (163 pos / 84 neg)"]
    # 157/163 = 96.319 %, 77/84 = 91.667 %, 234/247 = 94.737 %: truncated to 96.31, 91.66, 94.73
    assert c.consistent is True


def test_pooled_check_agrees_with_mlscorecheck():
    from mlscorecheck.check.binary import check_1_dataset_kfold_som

    logging.getLogger("mlscorecheck").setLevel(logging.WARNING)
    folding = {"n_folds": 3, "n_repeats": 1}
    for centres, expected in (({"acc": 0.94735, "sens": 0.96315, "spec": 0.91665}, False),  # truncated
                              ({"acc": 0.9473, "sens": 0.9631, "spec": 0.9166}, True)):  # rounded
        result = check_1_dataset_kfold_som(dataset={"p": 163, "n": 84}, folding=folding, scores=centres, eps=5e-5)
        assert result["inconsistency"] is expected


def test_a_mean_of_folds_survives_what_pooled_counts_do_not():
    # specificity 92.66 %: no pooled matrix, but some 3-fold configuration's mean of fold scores fits
    claim = _claim(accuracy="94.73%", sensitivity="96.31%", specificity="92.66%")
    c = check_consistency(claim, n_pos=163, n_neg=84, folds=3)
    by = {(x.aggregation, x.convention): x for x in c.checks}
    assert by[(POOLED, "rounded")].feasible is False and by[(POOLED, "truncated")].feasible is False
    assert by[(MEAN_ANY, "rounded")].feasible is True
    assert c.consistent is True and "mean of fold scores" in c.reason


@pytest.mark.parametrize("field, nudged", [("sensitivity", "92.9%"), ("specificity", "87.5%"), ("accuracy", "90.2%")])
def test_nudging_one_number_by_one_point_breaks_a_consistent_claim(field, nudged):
    # IDH CNN+GNN test set at n = 74: 66/74 = 89.19 %, 34/37 = 91.89 %, 32/37 = 86.49 % (balanced 37 / 37)
    claim = dict(accuracy="89.2%", sensitivity="91.9%", specificity="86.5%")
    ok = check_consistency(_claim(**claim), n_pos=37, n_neg=37)
    assert ok.consistent is True
    assert [m.text() for x in ok.survivors for m in x.matrices()] == ["TP 34 FN 3 TN 32 FP 5 (37 pos / 37 neg)"]
    bad = check_consistency(_claim(**{**claim, field: nudged}), n_pos=37, n_neg=37)
    assert bad.consistent is False
    near = bad.nearest()
    assert field in near.breaks


def test_the_split_search_recovers_an_unreported_split():
    c = check_consistency(_claim(accuracy="89.2%", sensitivity="91.9%", specificity="86.5%"), n=74)
    assert {s for x in c.survivors for s in x.splits} == {(37, 37)}
    assert check_consistency(_claim(accuracy="89.2%", sensitivity="91.9%", specificity="86.5%"), n=75).consistent is False


def test_a_17_class_micro_claim_is_recognised():
    claim = _claim(accuracy="99.64%", precision="99.64%", sensitivity="99.64%", f1="99.64%")
    c = check_consistency(claim, n=278, classes=17, averages=("micro", "macro", "weighted"))
    assert c.identities and "equal by definition" in c.identities[0] and "17 classes" in c.identities[0]
    micro = [x for x in c.checks if x.average == "micro" and x.convention == "rounded"][0]
    assert micro.status == "fits" and micro.correct == (277,)  # 277 / 278 = 99.64 %
    macro = [x for x in c.checks if x.average == "macro"][0]
    assert macro.status == "partial" and set(macro.unchecked) == {"precision", "sensitivity", "f1"}
    unequal = check_consistency(_claim(accuracy="99.64%", precision="98.00%"), n=278, classes=17, averages=("micro",))
    assert unequal.consistent is False
    unknown_n = check_consistency(claim, classes=17, averages=("micro",))
    assert unknown_n.consistent is None and unknown_n.identities


def test_multiclass_micro_specificity_matches_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    k = int((y == pred).sum())
    scores = multiclass_micro_scores(np.array([k]), 200, 4)
    tn = fp = 0
    for c in range(4):
        tn += int(((y != c) & (pred != c)).sum())
        fp += int(((y != c) & (pred == c)).sum())
    assert scores["specificity"][0] == pytest.approx(tn / (tn + fp))
    assert scores["f1"][0] == pytest.approx(precision_recall_fscore_support(y, pred, average="micro")[2])


@pytest.mark.parametrize("text", [("94.73%", "96.31%", "91.66%"), ("0.9473", "0.9631", "0.9166")])
def test_percentages_and_fractions_give_the_same_answer(text):
    claim = _claim(accuracy=text[0], sensitivity=text[1], specificity=text[2])
    c = check_consistency(claim, n_pos=163, n_neg=84)
    assert [(x.convention, x.feasible) for x in c.checks] == [("rounded", False), ("truncated", True)]


def test_every_averaging_matches_scikit_learn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_pos, n_neg = rng.integers(3, 40, 2)
        tp, tn = rng.integers(1, n_pos), rng.integers(1, n_neg)
        y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
        pred = np.r_[np.ones(tp, int), np.zeros(n_pos - tp, int), np.zeros(tn, int), np.ones(n_neg - tn, int)]
        for average, (sk_average, pos_label) in {"binary": ("binary", 1), "binary_other": ("binary", 0),
                                                 "micro": ("micro", 1), "macro": ("macro", 1),
                                                 "weighted": ("weighted", 1)}.items():
            p, r, f, _ = precision_recall_fscore_support(y, pred, average=sk_average, pos_label=pos_label,
                                                         zero_division=np.nan)
            ours = binary_scores(np.array(tp), np.array(tn), n_pos, n_neg, average)
            assert (float(ours["precision"]), float(ours["sensitivity"]), float(ours["f1"])) == pytest.approx((p, r, f))


def test_binary_enumeration_agrees_with_mlscorecheck_on_random_claims():
    from mlscorecheck.check.binary import check_1_testset_no_kfold

    logging.getLogger("mlscorecheck").setLevel(logging.WARNING)
    rng = np.random.default_rng(1)
    names = {"accuracy": "acc", "sensitivity": "sens", "specificity": "spec", "precision": "ppv", "npv": "npv",
             "f1": "f1"}
    agree = 0
    for _ in range(40):
        n_pos, n_neg = (int(x) for x in rng.integers(5, 60, 2))
        tp, tn = int(rng.integers(1, n_pos)), int(rng.integers(1, n_neg))
        values = binary_scores(np.array(tp), np.array(tn), n_pos, n_neg, "binary")
        chosen = list(rng.choice(list(names), size=3, replace=False))
        printed = {k: f"{float(values[k]) + rng.choice([0.0, 0.004]):.2f}" for k in chosen}  # some nudged
        ours = check_consistency(_claim(**printed), n_pos=n_pos, n_neg=n_neg)
        rounded = [x for x in ours.checks if x.convention == "rounded"][0]
        theirs = check_1_testset_no_kfold(testset={"p": n_pos, "n": n_neg},
                                          scores={names[k]: float(v) for k, v in printed.items()}, eps=0.005,
                                          numerical_tolerance=1e-9)
        assert rounded.feasible is (not theirs["inconsistency"]), printed
        agree += 1
    assert agree == 40


def test_stratified_mean_of_folds_lists_its_splits():
    c = check_consistency(_claim(accuracy="94.73%", sensitivity="96.31%", specificity="91.66%"), n=247, folds=3)
    strat = {x.convention: x for x in c.checks if x.aggregation == MEAN_STRATIFIED}
    assert strat["rounded"].feasible is False and (163, 84) in strat["truncated"].splits
    not_run = [x for x in c.checks if x.aggregation == MEAN_ANY]
    assert all(x.feasible is None and "--n-pos/--n-neg" in x.note for x in not_run)


def test_equal_weighted_precision_and_f1_are_not_called_one_number():
    """Found by a newcomer: fysstk_resnet101_weighted (precision, recall, F1 all 0.87, stated weighted)
    was told they are equal by definition under micro averaging; under weighted averaging only recall
    is the share correct by definition (sum over classes of n_c / N * TP_c / n_c)."""
    from mgmt_audit.analysis.claims.consistency import _identities
    from mgmt_audit.analysis.reported import parse_proportion

    reported = {k: parse_proportion("0.87") for k in ("precision", "sensitivity", "f1")}
    [weighted] = _identities(reported, 3, ("weighted",))
    assert "only the sensitivity is the share correct by definition" in weighted
    assert "precision (PPV) and F1 equal to it only by coincidence" in weighted
    assert "equal by definition" in _identities(reported, 3, ("micro", "macro", "weighted"))[0]
    assert _identities(reported, 3, ("macro",)) == ()
