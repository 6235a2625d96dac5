"""The metrics a paper reports, their names and aliases, and their values over many confusion
matrices at once (numpy arrays of counts), under each averaging.

Two classes, "positive" (``n_pos`` cases) and "negative" (``n_neg``): ``tp`` positives and ``tn``
negatives classified correctly. Each class has its one-vs-rest counts (the positive class: TP = tp,
FN = n_pos - tp, FP = n_neg - tn, TN = tn; the negative class the same with the roles swapped) and
its scores; the averagings follow scikit-learn's ``precision_recall_fscore_support``:

- ``binary``: the positive class's scores; ``binary_other``: the other class taken as positive;
- ``macro``: the mean of the two classes' scores; ``weighted``: their mean weighted by class size;
- ``micro``: the scores of the summed one-vs-rest counts, so precision = recall = F1 = accuracy.

Accuracy and balanced accuracy (the mean recall) are the same under every averaging. With C > 2
classes only ``micro`` is a function of the number correct k (precision = recall = F1 = k / N,
specificity = NPV = (N (C - 2) + k) / (N (C - 1))); weighted recall equals accuracy under any C.
A ratio 0/0 is NaN (undefined), which no printed number matches.
"""

from __future__ import annotations

import numpy as np

from mgmt_audit.errors import AnalysisInputError

AUC = "auc"
ACCURACY = "accuracy"
SENSITIVITY = "sensitivity"
SPECIFICITY = "specificity"
PRECISION = "precision"
NPV = "npv"
F1 = "f1"
BALANCED_ACCURACY = "balanced_accuracy"
COUNT_METRICS = (ACCURACY, SENSITIVITY, SPECIFICITY, PRECISION, NPV, F1, BALANCED_ACCURACY)
METRICS = (AUC, *COUNT_METRICS)
LABELS = {AUC: "AUC", ACCURACY: "accuracy", SENSITIVITY: "sensitivity (recall)",
          SPECIFICITY: "specificity", PRECISION: "precision (PPV)", NPV: "NPV", F1: "F1",
          BALANCED_ACCURACY: "balanced accuracy"}
ALIASES = {
    "auc": AUC, "roc_auc": AUC, "accuracy": ACCURACY, "acc": ACCURACY,
    "sensitivity": SENSITIVITY, "sens": SENSITIVITY, "recall": SENSITIVITY, "tpr": SENSITIVITY,
    "specificity": SPECIFICITY, "spec": SPECIFICITY, "tnr": SPECIFICITY,
    "precision": PRECISION, "ppv": PRECISION, "npv": NPV, "f1": F1, "f1_score": F1,
    "balanced_accuracy": BALANCED_ACCURACY, "bacc": BALANCED_ACCURACY,
}

BINARY, BINARY_OTHER, MICRO, MACRO, WEIGHTED = "binary", "binary_other", "micro", "macro", "weighted"
AVERAGES = (BINARY, BINARY_OTHER, MICRO, MACRO, WEIGHTED)
ANY = "any"
AVERAGE_LABELS = {BINARY: "binary (the stated positive class)", BINARY_OTHER: "binary (the other class positive)",
                  MICRO: "micro", MACRO: "macro", WEIGHTED: "weighted"}
# the names a caller may ask for: ``binary`` means the stated positive class, ``any`` every averaging
AVERAGE_CHOICES = (BINARY, MICRO, MACRO, WEIGHTED, ANY)


def canonical(name: str) -> str:
    """The canonical metric name of ``name`` ("recall" -> "sensitivity", "PPV" -> "precision").

    Raises AnalysisInputError naming the known metrics for an unknown name."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in ALIASES:
        raise AnalysisInputError(f"unknown metric {name!r}: use one of {', '.join(METRICS)} "
                                 "(aliases: recall, ppv, tpr, tnr, acc, bacc)", parameter="metrics")
    return ALIASES[key]


def averages_for(average: str, classes: int) -> tuple[str, ...]:
    """The averagings a claim is checked under: ``average`` one of ``AVERAGE_CHOICES`` ("any": every
    averaging that applies; two classes allow all five, more than two ``micro``, ``macro``,
    ``weighted``). Raises AnalysisInputError for an unknown averaging, or ``binary`` with C > 2."""
    if average not in AVERAGE_CHOICES:
        raise AnalysisInputError(f"average must be one of {', '.join(AVERAGE_CHOICES)}, got {average!r}",
                                 parameter="average")
    if classes > 2:
        if average == BINARY:
            raise AnalysisInputError(f"binary averaging needs two classes, got {classes}: use micro, "
                                     "macro, weighted or any", parameter="average")
        return (MICRO, MACRO, WEIGHTED) if average == ANY else (average,)
    return AVERAGES if average == ANY else (average,)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _class_scores(tp, fn, fp, tn) -> dict[str, np.ndarray]:
    return {SENSITIVITY: _ratio(tp, tp + fn), SPECIFICITY: _ratio(tn, tn + fp),
            PRECISION: _ratio(tp, tp + fp), NPV: _ratio(tn, tn + fn), F1: _ratio(2 * tp, 2 * tp + fp + fn)}


def binary_scores(tp: np.ndarray, tn: np.ndarray, n_pos, n_neg, average: str) -> dict[str, np.ndarray]:
    """Every count metric of the two-class confusion matrices (``tp``, ``tn``) on ``n_pos`` / ``n_neg``
    cases (arrays broadcast together), under ``average`` (one of ``AVERAGES``): a dict metric -> array.

    Raises AnalysisInputError for an unknown averaging."""
    tp, tn = np.asarray(tp), np.asarray(tn)
    n_pos, n_neg = np.asarray(n_pos), np.asarray(n_neg)
    fn, fp = n_pos - tp, n_neg - tn
    total = n_pos + n_neg
    pos, neg = _class_scores(tp, fn, fp, tn), _class_scores(tn, fp, fn, tp)
    common = {ACCURACY: _ratio(tp + tn, total), BALANCED_ACCURACY: (pos[SENSITIVITY] + neg[SENSITIVITY]) / 2}
    if average == BINARY:
        scores = pos
    elif average == BINARY_OTHER:
        scores = neg
    elif average == MACRO:
        scores = {k: (pos[k] + neg[k]) / 2 for k in pos}
    elif average == WEIGHTED:
        scores = {k: _ratio(n_pos * pos[k] + n_neg * neg[k], total) for k in pos}
    elif average == MICRO:
        scores = _class_scores(tp + tn, fn + fp, fp + fn, tn + tp)
    else:
        raise AnalysisInputError(f"average must be one of {AVERAGES}, got {average!r}", parameter="average")
    return {**scores, **common}


def multiclass_micro_scores(correct: np.ndarray, n: int, classes: int) -> dict[str, np.ndarray]:
    """The metrics of a C-class prediction with ``correct`` of ``n`` right, under micro averaging
    (and weighted recall, which is accuracy): the metrics that are functions of the number correct.
    Balanced accuracy, macro and weighted precision and F1 are not, and are absent."""
    acc = _ratio(correct, np.full_like(np.asarray(correct), n))
    off = n * (classes - 2) + np.asarray(correct, dtype=float)
    spec = _ratio(off, np.full_like(off, n * (classes - 1)))
    return {ACCURACY: acc, SENSITIVITY: acc, PRECISION: acc, F1: acc, SPECIFICITY: spec, NPV: spec}
