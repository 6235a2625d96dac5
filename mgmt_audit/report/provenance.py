"""What was actually run, for the report's header and its reproducibility section: per study and
cohort, the profile, the input the models saw, the training settings, seeds, trials and split,
read from what the runs recorded (their ``meta.json`` configuration and split, the cohort's cache
manifest, the study's Optuna attributes), never from a spec's published sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mgmt_audit.data.manifest import Manifest
from mgmt_audit.data.splits import SLICE
from mgmt_audit.report.collect import StudyRuns


@dataclass(frozen=True)
class StudyRun:
    """One study as run on one cohort."""

    study: str
    cohort: str
    profile: str
    spec_hash: str
    model: str
    input: str
    training: str
    seeds: str
    trials: str
    split: str

    @property
    def line(self) -> str:
        """The run in one line, as the report's header states it."""
        return (f"profile {self.profile}; {self.model} on {self.input}; {self.training}; "
                f"{self.seeds}; {self.trials}; {self.split}")


def study_runs(studies: Sequence[StudyRuns], manifests: Mapping[str, Manifest]) -> list[StudyRun]:
    """One :class:`StudyRun` per study with a finished run; the input size from the cohort's cache
    manifest when the report has it, else from the study's recorded spec."""
    out = []
    for study in studies:
        runs = [t.result for t in study.finished if not t.null]
        if not runs:
            continue
        # the header describes a patient-level split when there is one: a slice split (a leak,
        # e.g. leak_demo) puts the same patients on every side, so its counts are stated apart
        run = next((r for r in runs if r.split.unit != SLICE), runs[0])
        leaked = next((r for r in runs if r.split.unit == SLICE), None)
        config, attrs = run.config, study.attrs
        spec = attrs.get("spec", {})
        manifest = manifests.get(study.cohort)
        preprocess = manifest.preprocess if manifest is not None else spec.get("data", {}).get("preprocess", {})
        modalities = "+".join(config.get("modalities") or spec.get("data", {}).get("modalities") or ["images"])
        if manifest is not None and manifest.dataset == "digits":
            modalities = "MNIST digit images"
        view = config.get("view")
        model = str(config.get("model", spec.get("model", {}).get("family", "?")))
        preset = spec.get("model", {}).get("preset")
        nulls = sum(t.null for t in study.trials)
        out.append(StudyRun(
            study=study.name, cohort=study.cohort, profile=str(attrs.get("profile", "not recorded")),
            spec_hash=str(attrs.get("spec_hash", "not recorded")),
            model=model + (f" (preset {preset})" if preset else ""),
            input=f"{_size(preprocess)} {modalities}" + (f" ({view})" if view else ""),
            training=_training(config),
            seeds="seeds " + ", ".join(str(s) for s in sorted({t.seed for t in study.trials
                                                            if not t.null and t.seed is not None})),
            trials=f"{len(study.trials)} trials ({nulls} label-permutation null)",
            split=(f"patient split: {_split(run.split)}; {_slice_split(leaked.split)}"
                   if leaked is not None and run.split.unit != SLICE else _split(run.split)),
        ))
    return out


def merged(runs: Sequence[StudyRun]) -> list[tuple[StudyRun, list[str]]]:
    """Runs of one study that ran alike on several cohorts as one (first run, its cohorts)."""
    groups: dict[tuple[str, str, str], tuple[StudyRun, list[str]]] = {}
    for run in runs:
        groups.setdefault((run.study, run.spec_hash, run.line), (run, []))[1].append(run.cohort)
    return list(groups.values())


def header_lines(runs: Sequence[StudyRun]) -> list[str]:
    """One line per study (its cohorts merged when they ran alike), for the report's header."""
    return [f"{run.study} (cohort{'s' if len(cohorts) > 1 else ''} {', '.join(cohorts)}): {run.line}"
            for run, cohorts in merged(runs)]


def _size(preprocess: Mapping[str, Any]) -> str:
    size, depth = preprocess.get("size"), preprocess.get("depth")
    if size is None:
        return "images of unrecorded size,"
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    return f"{height} × {width}" + (f" × {depth}" if depth else "")


def _training(config: Mapping[str, Any]) -> str:
    parts = [str(config[k]) for k in ("optimizer",) if k in config]
    if "epochs" in config:
        parts.append(f"{config['epochs']} epochs")
    if "batch_size" in config:
        parts.append(f"batch {config['batch_size']}")
    return ", ".join(parts) or "training settings not recorded"


def _split(split: Any) -> str:
    """The patients of one run's split, counted."""
    if split.unit == SLICE:
        return _slice_split(split)
    if split.k_folds:
        return f"{split.k_folds}-fold cross-validation ({len(split.train) + len(split.val)} patients)"
    sides = [f"{len(split.train)} train", f"{len(split.val)} validation"]
    if split.test:
        sides.append(f"{len(split.test)} held-out test")
    return " / ".join(sides) + " patients"


def _slice_split(split: Any) -> str:
    """A slice-level split stated as what it is: the slices of every patient pooled and split, so
    the sides share patients (their counts overlap and do not add up)."""
    patients = len(set(split.train) | set(split.val) | set(split.test))
    return (f"slice split (leaked): the slices of {patients} patients pooled and split, so "
            f"{len(split.train)}, {len(split.val)} and {len(split.test)} of them have slices in train, "
            "validation and held-out test")
