"""Are the reported numbers arithmetically possible together? Is there any confusion matrix (or set of
cross-validation fold matrices) that reproduces every number to the precision it was printed with?

"Arithmetically possible" is all a consistency check can say: it cannot detect leakage, selection or
a test set used for tuning. Three aggregations:

- one test set (or k folds **pooled**, the score of the summed counts, which is one matrix over all
  cases): every two-class matrix is enumerated exactly, vectorised over the counts (numpy), under each
  averaging of :mod:`.metrics` and both printing conventions (rounded, truncated); with the class split
  unknown every split of ``n`` is searched. When nothing fits, the nearest matrix (the smallest worst
  miss in units of the last printed digit) says which number breaks it. Written here rather than
  taken from ``mlscorecheck`` because mlscorecheck 1.0.3's macro check crashes on precision and F1
  (``UnboundLocalError: tn_init``), it has no weighted averaging, and it reports neither the feasible
  matrices' count nor the nearest matrix; its binary check agrees with this one (tested).
- **mean of folds** (each fold's score, then their mean) with stratified folds (scikit-learn's
  ``StratifiedKFold`` sizes) or any fold configuration: ``mlscorecheck``'s linear-programming checks
  (Fazekas & Kovács 2024), which cover accuracy, sensitivity, specificity and balanced accuracy.
- more than two classes: the metrics that are functions of the number correct (micro averaging,
  weighted recall = accuracy), over every count.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import ceil, floor

import numpy as np

from mgmt_audit.analysis.claims.metrics import (
    ACCURACY,
    AUC,
    AVERAGE_LABELS,
    BALANCED_ACCURACY,
    BINARY,
    BINARY_OTHER,
    F1,
    LABELS,
    MACRO,
    MICRO,
    PRECISION,
    SENSITIVITY,
    SPECIFICITY,
    WEIGHTED,
    binary_scores,
    multiclass_micro_scores,
)
from mgmt_audit.analysis.reported import CONVENTIONS, PrintedNumber
from mgmt_audit.errors import AnalysisInputError
from mgmt_audit.words import counted

ONE_SET, POOLED = "one test set", "pooled over the folds (score of the summed counts)"
MEAN_STRATIFIED = "mean of fold scores, stratified folds"
MEAN_ANY = "mean of fold scores, any fold configuration"
MAX_LISTED = 10  # matrices / splits listed by name; more are counted and given as ranges
FULL_GRID_CELLS = 20_000_000  # matrices enumerated in full (nearest matrix included); beyond: pruned
ANY_FOLDS_LIMIT = 2_000  # fold configurations mlscorecheck may try for one split
_MLS = {ACCURACY: "acc", SENSITIVITY: "sens", SPECIFICITY: "spec", BALANCED_ACCURACY: "bacc"}


@dataclass(frozen=True)
class Matrix:
    """One two-class confusion matrix: ``tp`` of ``n_pos`` positives and ``tn`` of ``n_neg`` negatives
    right (for k folds pooled: the summed counts)."""

    n_pos: int
    n_neg: int
    tp: int
    tn: int

    @property
    def fn(self) -> int:
        return self.n_pos - self.tp

    @property
    def fp(self) -> int:
        return self.n_neg - self.tn

    def text(self) -> str:
        return f"TP {self.tp} FN {self.fn} TN {self.tn} FP {self.fp} ({self.n_pos} pos / {self.n_neg} neg)"


@dataclass(frozen=True)
class Nearest:
    """The matrix (or number correct, for C > 2 classes) that comes closest when none fits: each
    metric's value there and its miss in units of the last printed digit; ``breaks`` names the
    metric(s) missing most."""

    matrix: Matrix | None
    correct: int | None
    n: int
    values: dict[str, float]
    misses: dict[str, float]
    breaks: tuple[str, ...]

    @property
    def worst_miss(self) -> float:
        return max(self.misses.values())


@dataclass(frozen=True)
class Check:
    """One aggregation × averaging × printing convention.

    ``feasible``: None when nothing could be checked. ``tp`` / ``tn`` / ``n_pos`` / ``n_neg``: every
    feasible matrix (one test set, pooled; arrays in the stated positive class's terms); ``correct``:
    every feasible number correct (C > 2). ``splits``: the feasible (n_pos, n_neg). ``checked`` /
    ``unchecked``: the metrics this check could and could not test (with why in ``note``)."""

    aggregation: str
    average: str
    convention: str
    feasible: bool | None
    checked: tuple[str, ...]
    unchecked: tuple[str, ...]
    method: str
    splits: tuple[tuple[int, int], ...] = ()
    tp: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    tn: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    n_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    n_neg: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    correct: tuple[int, ...] = ()
    nearest: Nearest | None = None
    note: str = ""

    @property
    def n_matrices(self) -> int:
        return int(self.tp.size) if self.correct == () else len(self.correct)

    def matrices(self, limit: int | None = None) -> list[Matrix]:
        """The feasible matrices (the first ``limit``)."""
        stop = self.tp.size if limit is None else min(limit, self.tp.size)
        return [Matrix(int(self.n_pos[i]), int(self.n_neg[i]), int(self.tp[i]), int(self.tn[i]))
                for i in range(stop)]

    @property
    def what(self) -> str:
        """The averaging checked, in words ("an attainable AUC" for an AUC alone)."""
        return "an attainable AUC" if self.checked == (AUC,) else f"{AVERAGE_LABELS[self.average]} averaging"

    @property
    def label(self) -> str:
        return f"{self.aggregation}, {self.what}, {self.convention}"

    @property
    def status(self) -> str:
        """"fits" (every number checked and reproduced), "partial" (the numbers it could check fit,
        others it could not check), "fails", or "not checked"."""
        if self.feasible is None:
            return "not checked"
        if not self.feasible:
            return "fails"
        return "partial" if self.unchecked else "fits"


@dataclass(frozen=True)
class Consistency:
    """Every check of one claim. ``consistent``: True when some check reproduces every number, False
    when every check that could test something failed, None otherwise (nothing checkable, or only
    some of the numbers checkable and those fit; ``reason`` says which). ``identities``: relations that
    hold by definition (micro averaging)."""

    consistent: bool | None
    checks: tuple[Check, ...]
    identities: tuple[str, ...]
    reason: str

    @property
    def survivors(self) -> tuple[Check, ...]:
        """The checks whose tested numbers all fit (complete or partial)."""
        return tuple(c for c in self.checks if c.feasible)

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tp, tn, n_pos, n_neg) of every distinct feasible two-class matrix, over every surviving
        one-test-set or pooled check."""
        rows = {(int(c.n_pos[i]), int(c.n_neg[i]), int(c.tp[i]), int(c.tn[i]))
                for c in self.survivors for i in range(c.tp.size)}
        if not rows:
            empty = np.zeros(0, int)
            return empty, empty, empty, empty
        arr = np.array(sorted(rows))
        return arr[:, 2], arr[:, 3], arr[:, 0], arr[:, 1]

    def nearest(self) -> Nearest | None:
        """The nearest matrix over every check that computed one."""
        found = [c.nearest for c in self.checks if c.nearest is not None]
        return min(found, key=lambda x: x.worst_miss) if found else None


def check_consistency(
    reported: Mapping[str, PrintedNumber], *, n_pos: int | None = None, n_neg: int | None = None,
    n: int | None = None, folds: int | None = None, averages: tuple[str, ...] = (BINARY,),
    classes: int = 2,
) -> Consistency:
    """Check printed metrics (canonical names of :mod:`.metrics` -> :class:`PrintedNumber`) against
    every confusion matrix on ``n_pos`` positive / ``n_neg`` negative cases, or on ``n`` cases with
    the split searched; ``folds``: k-fold cross-validation (pooled and mean-of-folds checks);
    ``averages``: from :func:`.metrics.averages_for`; ``classes``: C >= 2.

    Raises AnalysisInputError for class sizes below 1, folds below 2 or above the smallest class,
    or a search too large to enumerate (the message names the input to add).
    """
    counts = {k: v for k, v in reported.items() if k != AUC}
    sizes_known = n_pos is not None and n_neg is not None
    total = n_pos + n_neg if sizes_known else n
    identities = _identities(reported, classes, averages)
    if total is None:
        return Consistency(None, (), identities, "the number of cases is unknown: nothing to check "
                           "against (give --n-pos/--n-neg or --n)")
    if not counts and AUC not in reported:
        return Consistency(None, (), identities, "no metric given")
    if folds is not None and (folds < 2 or folds > total):
        raise AnalysisInputError(f"folds must be in [2, {total}], got {folds}", parameter="folds")
    if classes > 2:
        checks = tuple(_multiclass(counts, total, classes, averages))
    else:
        splits = [(n_pos, n_neg)] if sizes_known else [(p, total - p) for p in range(1, total)]
        aggregation = ONE_SET if folds is None else POOLED
        checks = tuple(_two_class(reported, splits, averages, aggregation, sizes_known))
        if folds is not None:
            checks += tuple(_mean_of_folds(counts, splits, averages, folds, sizes_known))
    return _summarise(checks, identities)


def _identities(reported: Mapping[str, PrintedNumber], classes: int, averages: tuple[str, ...]) -> tuple[str, ...]:
    """Equal printed accuracy, precision, sensitivity and F1: one number under micro averaging; under
    weighted averaging only the sensitivity equals the accuracy by definition (recall weighted by class
    size is the share correct), so an equal precision and F1 is then a coincidence or a micro average."""
    same = [k for k in (ACCURACY, PRECISION, SENSITIVITY, F1) if k in reported]
    values = {reported[k].value for k in same}
    if len(same) < 2 or len(values) != 1:
        return ()
    names = ", ".join(LABELS[k] for k in same)
    share = f"each is the share correct{' of ' + str(classes) + ' classes' if classes > 2 else ''}"
    if MICRO in averages:
        return (f"{names} are all {reported[same[0]].text}: under micro averaging they are equal by "
                f"definition ({share}), so this is one number reported several times, not independent evidence",)
    if WEIGHTED in averages:
        odd = [LABELS[k] for k in same if k in (PRECISION, F1)]
        note = (f"; {' and '.join(odd)} equal to it only by coincidence, or because the average was micro, "
                "not the stated weighted one" if odd else "")
        return (f"{names} are all {reported[same[0]].text}: under weighted averaging only the sensitivity is "
                f"the share correct by definition (recall weighted by class size){note}",)
    return ()


def _two_class(reported: Mapping[str, PrintedNumber], splits: list[tuple[int, int]],
               averages: tuple[str, ...], aggregation: str, sizes_known: bool) -> Iterator[Check]:
    counts = [k for k in reported if k != AUC]
    if not counts:  # an AUC alone says nothing about the matrix: is it attainable at some split?
        for convention in CONVENTIONS:
            fit = tuple(s for s in splits if _auc_attainable(reported[AUC], *s, convention))
            yield Check(aggregation, BINARY, convention, bool(fit), (AUC,), (),
                        "attainable AUCs U / (n_pos n_neg), ties counting half", splits=fit)
        return
    cells = sum((p + 1) * (q + 1) for p, q in splits)
    full = cells <= FULL_GRID_CELLS
    if not full and ACCURACY not in reported:
        raise AnalysisInputError(
            f"{cells:.3g} confusion matrices to search: too many without the class split; give "
            "--n-pos/--n-neg, or the accuracy", parameter="n")
    found = {(a, c): ([], [], [], [], set()) for a in averages for c in CONVENTIONS}
    best: dict[tuple[str, str], tuple[float, Nearest | None]] = {key: (np.inf, None) for key in found}
    for p, q in splits:
        tp, tn = _candidates(p, q, None if full else reported[ACCURACY])
        auc_ok = {c: _auc_attainable(reported[AUC], p, q, c) for c in CONVENTIONS} if AUC in reported else None
        for average in averages:
            scores = binary_scores(tp, tn, p, q, average)
            for convention in CONVENTIONS:
                if auc_ok is not None and not auc_ok[convention]:
                    continue
                misses = {k: reported[k].miss(scores[k], convention) for k in counts}
                worst = np.max(np.vstack(list(misses.values())), axis=0)
                ok = worst == 0
                tps, tns, ps, qs, sp = found[(average, convention)]
                if ok.any():
                    tps.append(tp[ok])
                    tns.append(tn[ok])
                    ps.append(np.full(int(ok.sum()), p))
                    qs.append(np.full(int(ok.sum()), q))
                    sp.add((p, q))
                elif full and worst.size and worst.min() < best[(average, convention)][0]:
                    i = int(np.argmin(worst))
                    best[(average, convention)] = (float(worst[i]), _nearest(
                        Matrix(p, q, int(tp[i]), int(tn[i])), None, p + q,
                        {k: float(scores[k][i]) for k in counts}, {k: float(misses[k][i]) for k in counts}))
    method = "exact enumeration of every confusion matrix" + ("" if sizes_known else " at every class split")
    if not full:
        method += " with the printed accuracy (no nearest matrix: too many to search)"
    for (average, convention), (tps, tns, ps, qs, sp) in found.items():
        feasible = bool(sp)
        yield Check(aggregation, average, convention, feasible, tuple(reported), (), method,
                    splits=tuple(sorted(sp)), tp=_cat(tps), tn=_cat(tns), n_pos=_cat(ps), n_neg=_cat(qs),
                    nearest=None if feasible else best[(average, convention)][1])


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(int) if parts else np.zeros(0, int)


def _nearest(matrix: Matrix | None, correct: int | None, n: int, values: dict[str, float],
             misses: dict[str, float]) -> Nearest:
    worst = max(misses.values())
    breaks = tuple(k for k, m in misses.items() if m > 0 and m >= worst - 1e-9)
    return Nearest(matrix, correct, n, values, misses, breaks)


def _candidates(p: int, q: int, accuracy: PrintedNumber | None) -> tuple[np.ndarray, np.ndarray]:
    """Every (tp, tn) on p / q cases; with ``accuracy``, only those whose tp + tn prints as it under
    some convention (accuracy is the same under every averaging)."""
    if accuracy is None:
        tp, tn = np.meshgrid(np.arange(p + 1), np.arange(q + 1), indexing="ij")
        return tp.ravel(), tn.ravel()
    n = p + q
    ks = np.arange(n + 1)
    ok = np.zeros(n + 1, bool)
    for convention in CONVENTIONS:
        ok |= accuracy.contains(ks / n, convention)
    tps, tns = [], []
    for k in ks[ok]:
        tp = np.arange(max(0, k - q), min(p, k) + 1)
        tps.append(tp); tns.append(k - tp)
    return (np.concatenate(tps), np.concatenate(tns)) if tps else (np.zeros(0, int), np.zeros(0, int))


def _auc_attainable(auc: PrintedNumber, p: int, q: int, convention: str) -> bool:
    """Whether some attainable AUC, U / (p q) with U a multiple of 1/2 (ties count half), prints as
    ``auc``."""
    cells = 2 * p * q
    low, high = auc.interval(convention)
    candidates = np.arange(max(floor(low * cells) - 1, 0), min(ceil(high * cells) + 1, cells) + 1)
    return bool(auc.contains(candidates / cells, convention).any())


def _multiclass(counts: Mapping[str, PrintedNumber], n: int, classes: int,
                averages: tuple[str, ...]) -> Iterator[Check]:
    correct = np.arange(n + 1)
    scores = multiclass_micro_scores(correct, n, classes)
    checkable = {MICRO: set(scores), WEIGHTED: {ACCURACY, SENSITIVITY}, MACRO: {ACCURACY}}
    for average in averages:
        checked = tuple(k for k in counts if k in checkable[average])
        unchecked = tuple(k for k in counts if k not in checkable[average])
        note = (f"{', '.join(LABELS[k] for k in unchecked)} under {average} averaging of {classes} classes "
                "depend on the whole confusion matrix: not checked" if unchecked else "")
        for convention in CONVENTIONS:
            if not checked:
                yield Check(ONE_SET, average, convention, None, (), unchecked, "not checkable", note=note)
                continue
            misses = {k: counts[k].miss(scores[k], convention) for k in checked}
            worst = np.max(np.vstack(list(misses.values())), axis=0)
            ok = worst == 0
            nearest = None
            if not ok.any():
                i = int(np.argmin(worst))
                nearest = _nearest(None, i, n, {k: float(scores[k][i]) for k in checked},
                                   {k: float(misses[k][i]) for k in checked})
            yield Check(ONE_SET, average, convention, bool(ok.any()), checked, unchecked,
                        f"every number correct of {n}, {classes} classes", correct=tuple(int(k) for k in correct[ok]),
                        nearest=nearest, note=note)


@contextmanager
def _quiet_mlscorecheck() -> Iterator[None]:
    """mlscorecheck logs every step at INFO, and PuLP 3 warns that the CBC call mlscorecheck uses is
    deprecated (pyproject pins pulp < 4, where it still exists): neither is the caller's business."""
    logger = logging.getLogger("mlscorecheck")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulp\.")
            yield
    finally:
        logger.setLevel(level)


def _scores_and_eps(counts: Mapping[str, PrintedNumber], convention: str,
                    average: str) -> tuple[dict[str, float], float]:
    """mlscorecheck's symmetric form of the printed intervals: each centre, and one half-width (its
    mean-of-folds checks take a single uncertainty: the widest, which can only make the check more
    permissive when the numbers were printed to different digits)."""
    swap = {SENSITIVITY: SPECIFICITY, SPECIFICITY: SENSITIVITY} if average == BINARY_OTHER else {}
    scores, eps = {}, 0.0
    for name, number in counts.items():
        low, high = number.interval(convention)
        scores[_MLS[swap.get(name, name)]] = (low + high) / 2
        eps = max(eps, (high - low) / 2)
    return scores, eps


def _mean_of_folds(counts: Mapping[str, PrintedNumber], splits: list[tuple[int, int]],
                   averages: tuple[str, ...], folds: int, sizes_known: bool) -> Iterator[Check]:
    from mlscorecheck.check.binary import (
        check_1_dataset_known_folds_mos,
        check_1_dataset_unknown_folds_mos,
        estimate_n_evaluations,
    )

    checked = tuple(k for k in counts if k in _MLS)
    unchecked = tuple(k for k in counts if k not in _MLS)
    note = (f"{', '.join(LABELS[k] for k in unchecked)} not checked as a mean of folds (mlscorecheck "
            "covers accuracy, sensitivity, specificity, balanced accuracy)" if unchecked else "")
    for average in (a for a in averages if a in (BINARY, BINARY_OTHER)):
        for convention in CONVENTIONS:
            if not checked:
                for aggregation in (MEAN_STRATIFIED, MEAN_ANY):
                    yield Check(aggregation, average, convention, None, (), unchecked, "not checkable", note=note)
                continue
            scores, eps = _scores_and_eps({k: counts[k] for k in checked}, convention, average)
            feasible = []
            with _quiet_mlscorecheck():
                for p, q in splits:
                    if min(p, q) < folds:
                        continue
                    dataset = {"p": p, "n": q} if average == BINARY else {"p": q, "n": p}
                    result = check_1_dataset_known_folds_mos(
                        dataset=dataset, folding={"n_folds": folds, "strategy": "stratified_sklearn"},
                        scores=scores, eps=eps, verbosity=0)
                    if not result["inconsistency"]:
                        feasible.append((p, q))
            yield Check(MEAN_STRATIFIED, average, convention, bool(feasible), checked, unchecked,
                        "mlscorecheck check_1_dataset_known_folds_mos (linear programming), stratified "
                        f"{folds}-fold sizes" + ("" if sizes_known else " at every class split"),
                        splits=tuple(feasible), note=note)
            if not sizes_known:
                yield Check(MEAN_ANY, average, convention, None, (), checked + unchecked, "not run",
                            note="any fold configuration is searched only with the class split given "
                                 "(--n-pos/--n-neg): one linear program per configuration")
                continue
            (p, q), = splits
            if min(p, q) < folds:
                yield Check(MEAN_ANY, average, convention, None, (), checked + unchecked, "not run",
                            note=f"fewer cases in a class than {folds} folds")
                continue
            dataset = {"p": p, "n": q} if average == BINARY else {"p": q, "n": p}
            folding = {"n_folds": folds, "n_repeats": 1}
            configurations = estimate_n_evaluations(dataset, folding, list(scores))
            if configurations > ANY_FOLDS_LIMIT:
                yield Check(MEAN_ANY, average, convention, None, (), checked + unchecked, "not run",
                            note=f"{configurations} fold configurations: more than {ANY_FOLDS_LIMIT} to search")
                continue
            with _quiet_mlscorecheck():
                result = check_1_dataset_unknown_folds_mos(dataset=dataset, folding=folding, scores=scores,
                                                           eps=eps, verbosity=0)
            feasible_any = not result["inconsistency"]
            yield Check(MEAN_ANY, average, convention, feasible_any, checked, unchecked,
                        f"mlscorecheck check_1_dataset_unknown_folds_mos over {configurations} fold "
                        "configurations (linear programming)", splits=((p, q),) if feasible_any else (),
                        note=note)


def describe_checks(checks: list[Check]) -> str:
    """Checks grouped in words: "one test set: binary, micro averaging; rounded or truncated"."""
    parts = []
    for aggregation in dict.fromkeys(c.aggregation for c in checks):
        group = [c for c in checks if c.aggregation == aggregation]
        averages = ", ".join(dict.fromkeys(c.what for c in group))
        conventions = " or ".join(dict.fromkeys(c.convention for c in group))
        parts.append(f"{aggregation} ({averages}; {conventions})")
    return "; ".join(parts)


def _summarise(checks: tuple[Check, ...], identities: tuple[str, ...]) -> Consistency:
    tested = [c for c in checks if c.feasible is not None]
    if not tested:
        return Consistency(None, checks, identities, "nothing checkable: " + "; ".join(
            sorted({c.note for c in checks if c.note})))
    fits = [c for c in tested if c.status == "fits"]
    partial = [c for c in tested if c.status == "partial"]
    if fits:
        text = "arithmetically possible as " + describe_checks(fits)
        if partial:
            text += " (the checkable numbers also fit as " + describe_checks(partial) + ")"
        return Consistency(True, checks, identities, text)
    if partial:
        unchecked = sorted({k for c in partial for k in c.unchecked})
        return Consistency(None, checks, identities, "only some numbers checkable; those fit as "
                           + describe_checks(partial) + f" ({', '.join(LABELS[k] for k in unchecked)} not checked)")
    near = min((c.nearest for c in tested if c.nearest is not None), key=lambda x: x.worst_miss, default=None)
    text = "no confusion matrix reproduces every number under any averaging or printing convention checked"
    if near is not None:
        text += (f"; nearest: {near.matrix.text() if near.matrix else f'{near.correct} of {near.n} correct'}, "
                 f"where {', '.join(LABELS[b] for b in near.breaks)} misses by {counted(near.worst_miss, 'unit', fmt='.3g')} "
                 "of the last printed digit")
    return Consistency(False, checks, identities, text)
