"""Synthetic studies for the report tests: run folders written by the real ``RunResult.save`` and
Optuna FrozenTrials, with a known effect size, so the report can be checked without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna

from mgmt_audit.data.splits import Split
from mgmt_audit.report.collect import StudyRuns, TrialRun
from mgmt_audit.train.result import RunResult

N_VAL = 60  # validation patients: 30 per class
N_TEST = 200  # held-out test patients: 100 per class


def synthetic_run(seed: int, shift: float, epochs: int = 6, probe: bool = False, test: bool = True) -> RunResult:
    """Validation and (with ``test``) held-out test probabilities whose classes differ by ``shift``
    logits (0 = no signal); with ``probe``, two layers of features: ``shallow`` pure noise, ``deep``
    with the classes 4 sd apart."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], N_VAL // 2)
    probs = 1 / (1 + np.exp(-(rng.normal(0.0, 0.6, N_VAL) + shift * (labels - 0.5))))
    ids = [f"{i:05d}" for i in range(N_VAL)]
    n_test = N_TEST if test else 0
    test_labels = np.repeat([0, 1], n_test // 2)
    test_probs = 1 / (1 + np.exp(-(rng.normal(0.0, 0.6, n_test) + shift * (test_labels - 0.5))))
    test_ids = [f"{i:05d}" for i in range(200, 200 + n_test)]
    loss = np.log(2) + 0.05 * np.exp(-np.arange(epochs))
    curves = [{"epoch": e + 1, "train_loss": float(loss[e] - 0.02 * shift * e / epochs),
               "val_loss": float(loss[e] + rng.normal(0, 0.005))} for e in range(epochs)]
    return RunResult(
        config={"model": "toy", "view": "slices", "modalities": ["FLAIR"], "optimizer": "adam",
                "epochs": epochs, "batch_size": 8}, seed=seed,
        split=Split(tuple(f"{i:05d}" for i in range(100, 160)), tuple(ids), 42, 0.5, None, None,
                    tuple(test_ids), 0.6 if test else 0.0),
        device="cpu", labels_permuted=False, permutation_seed=None, ids=ids,
        labels=labels.tolist(), probs=probs.tolist(), curves=curves, best_epoch=epochs,
        amp=False, wall_time_s=0.1,
        features={"shallow": rng.normal(size=(N_VAL, 8)),
                  "deep": rng.normal(size=(N_VAL, 8)) + 4.0 * labels[:, None]} if probe else None,
        test_ids=test_ids, test_labels=test_labels.tolist(), test_probs=test_probs.tolist(),
    )


def synthetic_study(
    root: Path, name: str, cohort: str, shift: float, *, strength: float | None = None,
    configs: tuple[str, ...] = ("toy-a", "toy-b"), seeds: int = 3, null_trials: int = 4,
    probe: bool = False,
) -> StudyRuns:
    """A study of ``configs`` x ``seeds`` seed runs at ``shift`` and ``null_trials`` null runs."""
    trials, frozen = [], []
    plan = [(c, s, False) for c in configs for s in range(seeds)]
    plan += [(configs[i % len(configs)], 100 + i, True) for i in range(null_trials)]
    for number, (config, seed, null) in enumerate(plan):
        result = synthetic_run(seed + 1000 * number, 0.0 if null else shift, probe=probe)
        folder = result.save(root / name / str(number))
        params = {"lr": [1e-3, 3e-4][configs.index(config) % 2], "width": 8 + 8 * (number % 3)}
        trials.append(TrialRun(name, number, "COMPLETE", params, seed, null, config,
                               result.val_auc, folder))
        frozen.append(optuna.trial.create_trial(
            value=result.val_auc, params=params, user_attrs={"null": null, "seed": seed},
            distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                           "width": optuna.distributions.IntDistribution(8, 32)}))
    return StudyRuns(name, cohort, trials, strength=strength, frozen=frozen)
