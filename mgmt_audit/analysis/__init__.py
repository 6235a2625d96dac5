"""Analysis: pure functions from predictions (or printed numbers) to typed results, and the verdict.

How a verdict is reached (implemented once, in :mod:`mgmt_audit.analysis.verdict`)
=====================================================================================

Every verdict is relative to a stated **margin**, the smallest AUC of interest (default 0.65), and uses
one level, **alpha = 0.05, one-sided** for each question. Each question is a one-sided test paired with
the one-sided bound of the same level, so test and bound agree; the two bounds together are the
two-sided 1 - 2 alpha = **90 % interval** (the TOST convention, Lakens 2017).

Evidence and its interval
-------------------------
- *Seeds on the same patients* (or repetitions of cross-validation): the mean AUC over runs. Its
  standard error is DeLong's (DeLong, DeLong & Clarke-Pearson 1988), from the covariance of the runs'
  AUCs on the shared patients (structural components, Sun & Xu 2014): the seeds' correlation is
  estimated, not assumed.
- *k-fold cross-validation*: the folds' out-of-fold predictions are pooled into one AUC over all
  patients (one run per repetition).
- *Runs on different patients*: the mean AUC with the mean of the runs' DeLong errors, an upper bound on
  the error of the mean for any correlation (conservative).
- *A printed number*: the Hanley & McNeil (1982) error at its class sizes, judged over the interval its
  digits stand for ("0.59" = [0.585, 0.595]): chance at the low end, the margin at the high end; the
  output says when the two ends disagree.

Is it beyond chance?
--------------------
- One run: the Mann–Whitney test of AUC > 0.5 (exact without ties when small; scipy).
- A mean over runs on the same patients: the evaluation labels permuted, one permutation applied to
  every run's fixed predictions at once (exact for any seed correlation; 9,999 draws,
  p = (1 + b) / (1 + B), Ojala & Garriga 2010).
- *Selection*: when the judged configuration was chosen among N (pruned and failed included; the seeds
  of one configuration are not a selection), p is Šidák-adjusted, 1 - (1 - p)^N, the lower bound is
  taken at the Šidák level 1 - (1 - alpha)^(1/N), and the AUC is shown with its winner's-curse
  correction (median-unbiased for N configurations of equal AUC, the least favourable case).
- *The pipeline null*: AUCs of retrained label-permutation trials (each with its own permutation) on the
  same patients give p = (1 + #{null >= observed}) / (1 + n). It enters only when its floor 1 / (n + 1)
  allows a decision at alpha after selection (n >= 19 without selection); then it must reject too.
  A p at a floor that cannot decide but is at most 0.1 (9 to 18 trials, the observed AUC above all of
  them) blocks ``no_signal``; fewer trials say nothing either way.
- "Beyond chance" means: adjusted p <= alpha, and the (adjusted) lower bound > 0.5, and the pipeline
  null (when it can decide) rejects.

The four outcomes
-----------------
1. ``signal``: beyond chance, and AUC >= margin not excluded (upper bound >= margin).
2. ``signal_below_margin``: beyond chance, but the upper bound lies below the margin: real and small.
3. ``no_signal``: not beyond chance, the upper bound below the margin ("AUC >= 0.65 excluded") and the
   lower bound above 1 - margin (an inverted signal of the same size excluded too: two one-sided tests,
   Lakens 2017). So P(``no_signal`` | true AUC = margin) <= alpha; and a sample too small to
   exclude the margin cannot yield it (one run needs about 20 patients per class to exclude 0.65
   even when its AUC is exactly 0.5).
4. ``inconclusive``: anything else, saying what cannot be excluded ("cannot exclude AUC up to 0.81"),
   including: an interval wholly below 0.5 (worse than chance: one null cohort in 20, or inverted
   labels, or a bug), every run predicting one value, a failed positive control, and a pipeline null
   too small to decide whose p sits at its floor ("run at least 19 null trials").
The evaluation design (held-out test, out-of-fold, the search's own validation set, a prediction file,
a printed number) is stated with every verdict; studies split train / validation / test at patient
level and judge on the test patients that search and early stopping never saw.

Supporting evidence, shown beside the verdict and never changing it: the dip test per run (Hartigan),
the chance-loss plateau H(p), layer probes against the MNIST control, the AUC detectable with 80 %
power at this size and selection.

Calibration (``tests/test_verdict_calibration.py``, seeded simulations): the size of ``signal`` under
the null, P(``no_signal``) at the margin, power at the printed detectable AUC, pooled 5-fold CV, and
distinct permutations across null trials. Reference values: DeLong variance and covariance against
pROC (``benchmarks/reference_proc.py``), Mann–Whitney against scipy, Hanley–McNeil against its paper.
"""
