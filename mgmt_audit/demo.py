"""``mgmt-audit demo``: phantom cohorts with no signal and with planted signals, ingested, run through
the smoke profiles of model families over seeds with label-permutation nulls, and one report that
shows every verdict a study can get, judged at the default margin (AUC 0.65).

Cohorts: ``null`` (S = 0), ``signal`` (S = 1, strong) and, unless ``quick``, intermediate strengths
for the power curve. Each cohort is written (FLAIR only, the modality every demo study reads) and
ingested once into ``<out>/work/<cohort>/`` at one preprocessing (32 x 32 x 16) that every smoke model
accepts, and every study of that cohort reads that cache (so a spec's own smoke preprocessing is not
used here). Sizes are chosen so that each verdict can be earned: of 240 patients per cohort, 40 % are
the held-out test set (96 patients, 48 per class) the verdict is judged on, 20 % validate the search,
40 % train; with two seeds per configuration that excludes an AUC of 0.65 on the null cohort, while
every planted cohort's models reach AUCs that are found or honestly not excluded (``DEMO_TRAIN``
overrides each study's split; the report records it). Each cohort has its own Optuna storage,
``<out>/work/<cohort>/runs/<study>.db``; a re-run reuses everything finished.
The digits control (full plan only) is the ``mnist_control`` smoke study on the digits cohort that
``study run`` writes for it (:func:`mgmt_audit.study.data.digits_cohort`), at that profile's size.
Two controls of what else scores above chance (both plans): the leakage pair, the ``leak_demo`` smoke
study (the same 2D model split by patient and by slice, its own preprocessing; its three seeds, one in
the quick plan, ``QUICK_LEAK``) on the FLAIR of its own S = 0 phantom (cohort ``leak``: the FLAIR files
``study run leak_demo --profile smoke --phantom 0`` writes), and a cohort
``confound`` of ``CONTROL_PATIENTS`` S = 0 patients with an acquisition confound (``--confound
plane:0.9``), ingested only for the acquisition baseline that the report computes for every cohort's
cache (no image model is trained on it).
Trials run with one torch thread: on a shared 2-core machine more threads are many times slower.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mgmt_audit.analysis.verdict import DEFAULT_MARGIN
from mgmt_audit.data.manifest import MANIFEST_NAME, Manifest
from mgmt_audit.errors import ConfigError
from mgmt_audit.study.spec import StudySpec

Log = Callable[[str], None]


@dataclass(frozen=True)
class Cohort:
    """A phantom cohort: its name in the report and its planted signal strength S."""

    name: str
    strength: float


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: cohorts, patients per cohort, the study specs (smoke profile), and
    whether layers are probed and the digits control is run, and whether seed runs score Grad-CAM
    maps against the phantom's tumour masks."""

    cohorts: tuple[Cohort, ...]
    patients: int
    studies: tuple[str, ...]
    probe: bool
    attention: bool = True


QUICK = DemoPlan(cohorts=(Cohort("null", 0.0), Cohort("signal", 1.0)), patients=240,
                 studies=("demo",), probe=False, attention=False)
FULL = DemoPlan(
    cohorts=(Cohort("null", 0.0), Cohort("weak", 0.25), Cohort("medium", 0.5), Cohort("signal", 1.0)),
    patients=240, studies=("demo", "resnet10_seeds"), probe=True,
)
CONTROL_STUDY, CONTROL_COHORT = "mnist_control", "digits"
LEAK_STUDY, LEAK_COHORT, CONFOUND_COHORT = "leak_demo", "leak", "confound"
CONTROL_PATIENTS = 40  # patients of the confounded cohort
CONFOUND = "plane:0.9"
QUICK_LEAK = {"n_trials": 2, "seeds": {"count": 1}}  # the quick demo's leakage pair: one seed per split unit
PROFILE = "smoke"
PHANTOM_SEED = 0
MATRIX = 48  # in-plane matrix of the phantom DICOM series (the models see 32 x 32 crops)
PREPROCESS = {"size": 32, "depth": 16}
MODALITIES = ("FLAIR",)
DEMO_MARGIN = DEFAULT_MARGIN
DEMO_TRAIN = {"test_fraction": 0.4, "val_fraction": 0.2}


@dataclass(frozen=True)
class DemoResult:
    """The report's path and the verdict per cohort."""

    report: Path
    verdicts: dict[str, str]


def demo_spec(name: str) -> StudySpec:
    """A study's smoke profile with the demo's split (``DEMO_TRAIN``), margin and cache preprocessing."""
    from mgmt_audit.study.spec import load_study

    return load_study(name, PROFILE, overrides={"train": DEMO_TRAIN, "analysis": {"margin": DEMO_MARGIN},
                                                "data": {"preprocess": PREPROCESS}})


def run_demo(out: str | Path = "reports/demo", *, quick: bool = False, log: Log = print) -> DemoResult:
    """Write and ingest the cohorts, run every study of the plan on each (and, with probes, the
    MNIST-digits control), build the report."""
    from mgmt_audit.study.data import PHANTOM_DEFAULTS
    from mgmt_audit.study.spec import load_study
    from mgmt_audit.report.build import ReportInput, build_report, study_facts
    from mgmt_audit.report.collect import load_study_runs
    from mgmt_audit.study.storage import default_storage, safe_url
    from mgmt_audit.study.worker import RunOptions, run_study

    out = Path(out)
    plan = QUICK if quick else FULL
    started = time.perf_counter()
    specs = [demo_spec(name) for name in plan.studies]
    n_test = round(DEMO_TRAIN["test_fraction"] * plan.patients)
    sizes = (f"{plan.patients} patients per planted-signal cohort ({n_test} held-out test, "
             f"{round(DEMO_TRAIN['val_fraction'] * plan.patients)} validation), {PREPROCESS['size']} x "
             f"{PREPROCESS['size']} x {PREPROCESS['depth']} FLAIR, margin {DEMO_MARGIN:g}")
    log(f"demo ({'quick' if quick else 'full'}): cohorts "
        + ", ".join(f"{c.name} (S = {c.strength:g})" for c in plan.cohorts)
        + f"; {sizes}; studies {', '.join(plan.studies)} (profile {PROFILE})")
    manifests, studies = {}, []
    facts = {"demo plan": "quick" if quick else "full", "demo sizes": sizes,
             "demo split overrides": str(DEMO_TRAIN),
             "demo cache preprocessing": f"{PREPROCESS}, {list(MODALITIES)}",
             "storage": f"sqlite:///{(out / 'work').resolve()}/<cohort>/runs/<study>.db, one per cohort and study"}

    def run(spec, cohort: str, manifest: Manifest, attention: bool = plan.attention, **study_kwargs) -> None:
        runs_dir = out / "work" / cohort / "runs"
        storage = default_storage(spec.name, runs_dir)
        log(f"[{cohort}] study {spec.name}: {spec.n_trials} trials ({spec.null_trials} null) · "
            f"{time.perf_counter() - started:.0f} s elapsed")
        run_study(spec, RunOptions(storage=storage, runs_dir=runs_dir, n_trials=spec.n_trials,
                                   device="cpu", threads=1, probe=plan.probe, attention=attention),
                  data=manifest.folder, log=lambda line: log(f"[{cohort}] {line}"))
        study = load_study_runs(spec.name, storage, cohort=cohort, **study_kwargs)
        studies.append(study)
        search = f"search of {spec.name}"
        facts.setdefault(search, study_facts(study, safe_url(storage))[search])

    for cohort in plan.cohorts:
        manifest = prepare_cohort(cohort, out / "work" / cohort.name, patients=plan.patients, log=log,
                                  masks=plan.attention)
        manifests[cohort.name] = manifest
        log(format_summary(cohort.name, manifest.summary()))
        for spec in specs:
            run(spec, cohort.name, manifest, strength=cohort.strength)
    # the leakage pair: leak_demo's smoke profile (quick: one seed per split unit) on the FLAIR of its S = 0 phantom
    leak_overrides = {"analysis": {"margin": DEMO_MARGIN}, **(QUICK_LEAK if quick else {})}
    leak_spec, leak = load_study(LEAK_STUDY, PROFILE, overrides=leak_overrides), Cohort(LEAK_COHORT, 0.0)
    phantom = {**PHANTOM_DEFAULTS, **leak_spec.data.get("phantom", {})}
    if (int(phantom["matrix"]), int(phantom["seed"])) != (MATRIX, PHANTOM_SEED):
        raise ConfigError(f"{LEAK_STUDY}'s smoke phantom {phantom} is not written as the demo's cohorts "
                          f"(matrix {MATRIX}, seed {PHANTOM_SEED}): align them")
    manifests[leak.name] = prepare_cohort(leak, out / "work" / leak.name, patients=int(phantom["patients"]), log=log,
                                          preprocess=leak_spec.preprocess)
    run(leak_spec, leak.name, manifests[leak.name], attention=False, strength=leak.strength)  # no masks
    manifests[CONFOUND_COHORT] = prepare_cohort(Cohort(CONFOUND_COHORT, 0.0), out / "work" / CONFOUND_COHORT,
                                                patients=CONTROL_PATIENTS, log=log, confound=CONFOUND)
    if plan.probe:
        control = load_study(CONTROL_STUDY, PROFILE)
        manifest = prepare_control(control, out / "work" / CONTROL_COHORT / "runs", log)
        manifests[CONTROL_COHORT] = manifest
        run(control, CONTROL_COHORT, manifest, attention=False, control=True)  # digits have no tumour
    log(f"building the report · {time.perf_counter() - started:.0f} s elapsed")
    report = build_report(ReportInput(
        title="demo: phantom cohorts with and without a planted signal",
        description=(
            "Phantom glioblastoma cohorts whose label is linked to the images by a planted signal of "
            "strength S (S = 0: no link at all)"
            + (", and the MNIST-digits positive control" if plan.probe else "")
            + ". A trustworthy audit finds the signal where it was planted and excludes an AUC of the "
            f"margin where none was. Sizes run: {sizes}; the studies at their {PROFILE} profiles."),
        studies=studies, manifests=manifests, facts=facts, margin=DEMO_MARGIN,
    ), out)
    summary = json.loads(report.with_name("summary.json").read_text())
    for cohort in summary["cohorts"]:
        log(f"[{cohort['cohort']}] {cohort['verdict']}: {cohort['bound_words']}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return DemoResult(report, summary["verdicts"])


def prepare_cohort(cohort: Cohort, folder: Path, *, patients: int, log: Log = print, confound: str | None = None,
                   preprocess: dict | None = None, raw: Path | None = None, masks: bool = False) -> Manifest:
    """Write the phantom DICOM cohort (FLAIR) into ``raw`` (default ``folder/raw``), with the acquisition
    ``confound`` (e.g. ``"plane:0.9"``) when given, ingest it into ``folder/cache`` at ``preprocess``
    (default ``PREPROCESS``) and, with ``masks``, give every patient the phantom's tumour mask (the
    demo's phantom settings only); each step is skipped when its output is already there."""
    from mgmt_audit.study.spec import preprocess_spec
    from mgmt_audit.data.ingest import ingest
    from mgmt_audit.data.phantom import Confound, add_phantom_masks, write_phantom_cohort

    raw, cache = raw or folder / "raw", folder / "cache"
    labels = raw / "train_labels.csv"
    if not labels.is_file():
        log(f"[{cohort.name}] writing {patients} phantom patients, planted signal S = {cohort.strength:g}"
            + (f", acquisition confound {confound}" if confound else ""))
        write_phantom_cohort(raw, patients=patients, signal=cohort.strength, seed=PHANTOM_SEED,
                             matrix=MATRIX, workers=2, modalities=MODALITIES,
                             confound=None if confound is None else Confound.parse(confound))
    if (cache / MANIFEST_NAME).is_file():
        manifest = Manifest.load(cache)
    else:
        log(f"[{cohort.name}] ingesting {raw} -> {cache}")
        manifest = ingest(raw, labels, cache, spec=preprocess_spec(preprocess or PREPROCESS), modalities=MODALITIES,
                          dataset=None, exclude_flagged=False, workers=2, progress=False).manifest
    if masks and add_phantom_masks(manifest, signal=cohort.strength, seed=PHANTOM_SEED):
        log(f"[{cohort.name}] tumour masks (the phantom's segmentation on each FLAIR grid) added to {cache}")
    return manifest


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
