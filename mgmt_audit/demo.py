"""``mgmt-audit demo``: phantom cohorts with no signal and with planted signals, ingested, run through
the smoke profiles of several model families over seeds with label-permutation nulls, and one report.

Cohorts: ``null`` (S = 0), ``signal`` (S = 1, strong) and, unless ``quick``, intermediate strengths
for the power curve. Each cohort is written and ingested once into ``<out>/work/<cohort>/`` at one
preprocessing (32 x 32 x 16, FLAIR) that every smoke model accepts, and every study of that cohort
reads that cache (so a spec's own smoke preprocessing is not used here). Each cohort has its own
Optuna storage, ``<out>/work/<cohort>/runs/<study>.db``; a re-run reuses everything finished.
The digits control (full plan only) is the ``mnist_control`` smoke study on the digits cohort that
``study run`` writes for it (:func:`mgmt_audit.study.data.digits_cohort`), at that profile's size.
Trials run with one torch thread: on a shared 2-core machine more threads are many times slower.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mgmt_audit.config import StudySpec
from mgmt_audit.data.manifest import MANIFEST_NAME, Manifest

Log = Callable[[str], None]


@dataclass(frozen=True)
class Cohort:
    """A phantom cohort: its name in the report and its planted signal strength S."""

    name: str
    strength: float


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: cohorts, patients per cohort, the study specs (smoke profile), and
    whether layers are probed and the digits control is run."""

    cohorts: tuple[Cohort, ...]
    patients: int
    studies: tuple[str, ...]
    probe: bool


QUICK = DemoPlan(cohorts=(Cohort("null", 0.0), Cohort("signal", 1.0)), patients=32,
                 studies=("demo",), probe=False)
FULL = DemoPlan(
    cohorts=(Cohort("null", 0.0), Cohort("weak", 0.25), Cohort("medium", 0.5), Cohort("signal", 1.0)),
    patients=48, studies=("demo", "custom_cnn_sweep", "resnet10_seeds"), probe=True,
)
CONTROL_STUDY, CONTROL_COHORT = "mnist_control", "digits"
PROFILE = "smoke"
PHANTOM_SEED = 0
MATRIX = 48  # in-plane matrix of the phantom DICOM series (the models see 32 x 32 crops)
PREPROCESS = {"size": 32, "depth": 16}
MODALITIES = ("FLAIR",)


@dataclass(frozen=True)
class DemoResult:
    """The report's path and the verdict per cohort."""

    report: Path
    verdicts: dict[str, str]


def run_demo(out: str | Path = "reports/demo", *, quick: bool = False, log: Log = print) -> DemoResult:
    """Write and ingest the cohorts, run every study of the plan on each (and, with probes, the
    MNIST-digits control), build the report."""
    from mgmt_audit.config import load_study
    from mgmt_audit.report.build import ReportInput, build_report, study_facts
    from mgmt_audit.report.collect import load_study_runs
    from mgmt_audit.study.runner import RunOptions, default_storage, run_study, safe_url

    out = Path(out)
    plan = QUICK if quick else FULL
    started = time.perf_counter()
    specs = [load_study(name, PROFILE) for name in plan.studies]
    log(f"demo ({'quick' if quick else 'full'}): cohorts "
        + ", ".join(f"{c.name} (S = {c.strength:g})" for c in plan.cohorts)
        + f"; {plan.patients} patients each; studies {', '.join(plan.studies)} (profile {PROFILE})")
    manifests, studies, facts = {}, [], {"profile": PROFILE, "demo plan": "quick" if quick else "full",
                                         "demo cache preprocessing": f"{PREPROCESS}, {list(MODALITIES)}"}

    def run(spec, cohort: str, manifest: Manifest, **study_kwargs) -> None:
        runs_dir = out / "work" / cohort / "runs"
        storage = default_storage(spec.name, runs_dir)
        log(f"[{cohort}] study {spec.name}: {spec.n_trials} trials ({spec.null_trials} null) · "
            f"{time.perf_counter() - started:.0f} s elapsed")
        run_study(spec, RunOptions(storage=storage, runs_dir=runs_dir, n_trials=spec.n_trials,
                                   device="cpu", threads=1, probe=plan.probe),
                  data=manifest.folder, log=lambda line: log(f"[{cohort}] {line}"))
        study = load_study_runs(spec.name, storage, cohort=cohort, **study_kwargs)
        studies.append(study)
        facts.update({f"{k} ({cohort})": v for k, v in study_facts(study, safe_url(storage)).items()})

    for cohort in plan.cohorts:
        manifest = prepare_cohort(cohort, out / "work" / cohort.name, patients=plan.patients, log=log)
        manifests[cohort.name] = manifest
        log(format_summary(cohort.name, manifest.summary()))
        for spec in specs:
            run(spec, cohort.name, manifest, strength=cohort.strength)
    if plan.probe:
        control = load_study(CONTROL_STUDY, PROFILE)
        manifest = prepare_control(control, out / "work" / CONTROL_COHORT / "runs", log)
        manifests[CONTROL_COHORT] = manifest
        run(control, CONTROL_COHORT, manifest, control=True)
    log(f"building the report · {time.perf_counter() - started:.0f} s elapsed")
    report = build_report(ReportInput(
        title="demo: phantom cohorts with and without a planted signal",
        description=(
            "Phantom glioblastoma cohorts whose label is linked to the images by a planted signal of "
            "strength S (S = 0: no link at all). A trustworthy audit finds the signal where it was "
            "planted and none where it was not. Studies: "
            + "; ".join(f"{s.name}: {s.description}" for s in specs)),
        studies=studies, manifests=manifests, facts=facts,
    ), out)
    summary = json.loads(report.with_name("summary.json").read_text())
    log(f"done in {time.perf_counter() - started:.0f} s")
    return DemoResult(report, summary["verdicts"])


def prepare_cohort(cohort: Cohort, folder: Path, *, patients: int, log: Log = print) -> Manifest:
    """Write the phantom DICOM cohort into ``folder/raw`` and ingest it into ``folder/cache``
    (each step skipped when its output is already there)."""
    from mgmt_audit.config import preprocess_spec
    from mgmt_audit.data.ingest import ingest
    from mgmt_audit.data.phantom import write_phantom_cohort

    raw, cache = folder / "raw", folder / "cache"
    labels = raw / "train_labels.csv"
    if not labels.is_file():
        log(f"[{cohort.name}] writing {patients} phantom patients, planted signal S = {cohort.strength:g}")
        write_phantom_cohort(raw, patients=patients, signal=cohort.strength, seed=PHANTOM_SEED,
                             matrix=MATRIX, workers=2)
    if (cache / MANIFEST_NAME).is_file():
        return Manifest.load(cache)
    log(f"[{cohort.name}] ingesting {raw} -> {cache}")
    result = ingest(raw, labels, cache, spec=preprocess_spec(PREPROCESS), modalities=MODALITIES,
                    dataset=None, exclude_flagged=False, workers=2, progress=False)
    return result.manifest


def prepare_control(spec: StudySpec, runs_dir: Path, log: Log = print) -> Manifest:
    """The MNIST-digits positive control of ``spec`` (its profile's size), written once under
    ``runs_dir`` as ``mgmt-audit study run`` writes it."""
    from mgmt_audit.study.data import DIGITS_DEFAULTS, digits_cohort

    n = spec.data.get("phantom", {}).get("patients", DIGITS_DEFAULTS["patients"])
    log(f"[{CONTROL_COHORT}] {n} MNIST digits (label: digit >= 5) under {runs_dir}")
    return digits_cohort(spec, runs_dir)


def format_summary(name: str, summary: dict) -> str:
    """The manifest summary as a few printed lines."""
    lines = [(f"[{name}] {summary['patients']} patients: {summary['ok']} usable, "
              f"{summary['quarantined']} quarantined; labels {summary['labels_ok']}")]
    for modality, counts in summary["modalities"].items():
        planes = ", ".join(f"{p} {n}" for p, n in sorted(counts["planes"].items()))
        lines.append(f"    {modality:<6} ok {counts['ok']}, missing {counts['missing']}, "
                     f"quarantined {counts['quarantined']}; planes: {planes}")
    lines.extend(f"    excluded {e['id']}: {e['reason']}" for e in summary["exclusions"])
    return "\n".join(lines)
