"""One function per report section: grouped trials in, a :class:`~mgmt_audit.report.page.Section`
out. A section with nothing to show says why instead of vanishing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from mgmt_audit.analysis.bimodality import kde_curves
from mgmt_audit.analysis.chance_loss import label_entropy
from mgmt_audit.analysis.verdict import Bimodality, Verdict
from mgmt_audit.data.controls import digit_classes
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.errors import AnalysisInputError
from mgmt_audit.report import figures
from mgmt_audit.report.collect import StudyRuns
from mgmt_audit.report.groups import Group
from mgmt_audit.report.page import Block, Cell, Section, figure_block, table_block, text_block
from mgmt_audit.report.probing import StudyProbe
from mgmt_audit.report.verdicts import ReportVerdicts

T = TypeVar("T")
MAX_PANELS = 8  # seed runs shown per configuration in the probability histograms
MIN_IMPORTANCE_TRIALS = 6
MIN_BAND_TRIALS = 5  # null trials before a band of their central 90 % is drawn


def verdict_section(verdicts: ReportVerdicts) -> Section:
    """Section 1: the answer first (one row per cohort), then every configuration's evidence."""
    margin = verdicts.margin
    section = Section("verdicts", "Verdicts", intro=(
        f"Margin (smallest AUC of interest): {margin:g}. Each question is a one-sided test at alpha 0.05 "
        "with its bound; the interval shown is the two-sided 90% one. signal: beyond chance after every "
        f"selection, and an AUC of {margin:g} or more is not excluded. signal_below_margin: beyond "
        f"chance, but AUC >= {margin:g} is excluded. no_signal: not beyond chance, and both AUC >= "
        f"{margin:g} and an inverted signal of that size are excluded. inconclusive: anything else, "
        "with the AUCs that cannot be excluded. Each study's answer is its configuration with the best "
        "validation AUC, judged on the held-out test patients (▶ in the tables and figures)."))
    if not verdicts.cohorts:
        section.empty = "no trial finished: there is nothing to judge yet"
        return section
    rows = []
    for c in verdicts.cohorts:
        v = c.lead
        status_css = {"right": "verdict-right", "wrong": "verdict-wrong"}.get(c.status or "", "verdict-neutral")
        rows.append([
            c.cohort, None if c.strength is None else f"{c.strength:g}", f"{v.estimate.n_pos} / {v.estimate.n_neg}",
            v.design, f"{v.auc:.3f} [{v.ci_low:.3f}, {v.ci_high:.3f}]", Cell(c.verdict, status_css),
            v.bound_words, c.expected])
    section.blocks.append(table_block(
        ["cohort", "planted S", "n (pos / neg)", "evaluated on", "AUC [90% interval]", "verdict",
         "what the data exclude", "expected"], rows, title="By cohort",
        note="Green: the verdict a trustworthy audit must give on this phantom; red: one it must never "
             "give; grey: an allowed, weaker answer, or no expectation (real data)."))
    rows = []
    for cv in verdicts.configurations:
        v = cv.verdict
        rows.append([cv.group.study.cohort, ("▶ " if cv.selected else "") + cv.group.study.name, cv.group.config,
                     v.estimate.n_runs, cv.group.val_auc, f"{v.auc:.3f} [{v.ci_low:.3f}, {v.ci_high:.3f}]",
                     Cell(v.verdict, "verdict-neutral"), v.reason])
    section.blocks.append(table_block(
        ["cohort", "study", "configuration", "seeds", "validation AUC", "evaluation AUC [90%]", "verdict", "why"],
        rows, title="By configuration",
        note="Selection: each verdict is adjusted for the studies run on its cohort (or, judged on the "
             "validation patients, for every configuration its study tried)."))
    details = [Block(kind="text", title=cv.group.name, text="; ".join((cv.verdict.sentence, *cv.verdict.supporting)))
               for cv in verdicts.configurations]
    section.blocks.extend(details)
    return section


def auc_section(verdicts: ReportVerdicts) -> Section:
    """Section 2: each configuration's seed AUCs, their mean with its interval, the null band and the margin."""
    section = Section("auc", "AUC across seeds", intro=(
        "Each dot is one seed's AUC on the evaluation patients (the held-out test set when there is one); "
        "the black square is the mean over seeds with its 90% interval (DeLong, the seeds' covariance "
        "estimated); the grey band is the central 90% of the study's retrained label-permutation "
        f"trials on the same patients (drawn from {MIN_BAND_TRIALS} trials on); the dashed line is chance, "
        "the orange line the margin."))
    if not verdicts.configurations:
        section.empty = "no finished seed runs (only null or failed trials): nothing to plot"
        return section
    for cohort, members in by_cohort(verdicts.configurations, lambda cv: cv.group.study.cohort).items():
        strip = figures.auc_strip([
            figures.AucGroup(cv.group.config, cv.verdict.estimate.run_aucs, cv.verdict.auc, cv.verdict.ci_low,
                             cv.verdict.ci_high, _null_band(cv.verdict), cv.selected)
            for cv in members], verdicts.margin)
        section.blocks.append(figure_block(strip, f"AUC per seed and configuration, cohort {cohort}",
                                           f"Cohort {cohort}: AUC per seed, mean with its 90% interval, null band."))
    rows = []
    for cv in verdicts.configurations:
        v, null = cv.verdict, cv.verdict.pipeline_null
        aucs = np.asarray(v.estimate.run_aucs)
        rows.append([cv.group.study.cohort, cv.group.config, aucs.size, v.auc,
                     float(aucs.std(ddof=1)) if aucs.size > 1 else None, float(aucs.min()), float(aucs.max()),
                     0 if null is None else null.n, _null_p(null)])
    section.blocks.append(table_block(
        ["cohort", "configuration", "seeds", "mean AUC", "sd", "min", "max", "null runs",
         "permutation p (mean AUC)"], rows, note=(
             "Null runs: the study's label-permutation trials (each with its own permutation of the training "
             "labels), scored against the true labels of the same evaluation patients. Permutation p: "
             "(1 + #null AUCs >= mean AUC) / (1 + null runs); with fewer than 19 null runs it cannot reach "
             "0.05 and is shown with the number needed.")))
    return section


def _null_band(verdict: Verdict) -> tuple[float, float] | None:
    """The pipeline null's central 90 %, drawn once it has MIN_BAND_TRIALS trials."""
    null = verdict.pipeline_null
    return None if null is None or null.n < MIN_BAND_TRIALS else (null.low, null.high)


def _null_p(null) -> str | None:
    if null is None:
        return None
    if not null.usable:
        return f"{null.p_value:.3f} (too few: needs {null.needed})"
    return f"{null.p_value:.3f}"


def probability_section(verdicts: ReportVerdicts) -> Section:
    """Section 3: predicted-probability histograms with KDE per seed, coloured by true label."""
    section = Section("probabilities", "Predicted probabilities by true label", intro=(
        "Histograms of each seed run's predicted probability of label 1 on the evaluation patients the "
        "verdict is judged on, split by true label, with Gaussian KDE curves. A model with no signal gives "
        "one lump near the base rate for both classes. Under each panel: Sarle's bimodality coefficient "
        "BC (> 0.555 suggests two modes) and Hartigan's dip-test p (small = not unimodal), as in the "
        f"verdict's supporting evidence. At most {MAX_PANELS} seeds are shown per configuration."))
    for cohort, members in by_cohort(verdicts.configurations, lambda cv: cv.group.study.cohort).items():
        rows = [(cv.group.config, [_panel(f"seed {trial.seed}", run.labels, run.scores, cv.verdict.bimodality, i)
                                   for i, (trial, run) in enumerate(zip(cv.group.runs[:MAX_PANELS],
                                                                        cv.group.evaluation[:MAX_PANELS]))])
                for cv in members]
        section.blocks.append(figure_block(
            figures.probability_histograms(rows), f"predicted probabilities, cohort {cohort}",
            f"Cohort {cohort}: predicted probabilities per configuration (rows) and seed (columns)."))
    if not section.blocks:
        section.empty = "no finished seed runs: no predictions to show"
    return section


def by_cohort(items: Sequence[T], cohort: Callable[[T], str] = lambda g: g.study.cohort) -> dict[str, list[T]]:
    """``items`` (groups, or anything ``cohort`` maps to its cohort) keyed by cohort, in order of first
    appearance."""
    cohorts: dict[str, list[T]] = {}
    for item in items:
        cohorts.setdefault(cohort(item), []).append(item)
    return cohorts


def _panel(title: str, labels, probs, shape: Bimodality, run: int) -> figures.ProbabilityPanel:
    """One run's histogram panel: KDE curves to draw, and the verdict's shape statistics of that run."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    kde: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        curves = kde_curves(probs, labels, grid=np.linspace(0.0, 1.0, 200))
        grid = np.asarray(curves["grid"])
        kde = {0: (grid, np.asarray(curves["negative"])), 1: (grid, np.asarray(curves["positive"]))}
    except AnalysisInputError:
        pass  # a class with one value has no density: the histogram alone is drawn
    coefficient, dip = shape.coefficient[run], shape.dip_p[run]
    note = "constant output" if dip is None else f"BC {coefficient:.2f}, dip p {dip:.2f}"
    return figures.ProbabilityPanel(title, labels, probs, kde, note)


def loss_section(groups: Sequence[Group]) -> Section:
    """Section 4: training and validation loss per epoch with the chance loss H(p)."""
    section = Section("loss", "Training and validation loss", intro=(
        "Binary cross-entropy per epoch for every seed run. A model that ignores its input converges "
        "to the label entropy H(p) of the positive share p (dashed; p is the validation set's positive "
        "share, the split is stratified), not to 0.69 exactly; a validation loss that never goes below "
        "it has learnt nothing beyond the base rate."))
    for cohort, members in by_cohort(groups).items():
        rows = []
        for g in members:
            runs = [r for r in g.runs if r.result.curves]
            if runs:
                first = [[e for e in r.result.curves if e.get("fold", 0) == 0] for r in runs]  # CV: fold 0
                sets = [figures.CurveSet(f"seed {r.seed}", [e["train_loss"] for e in curves],
                                         [e["val_loss"] for e in curves])
                        for r, curves in zip(runs, first)]
                rows.append((g.config, sets, label_entropy(g.positive_share)))
        if rows:
            section.blocks.append(figure_block(
                figures.loss_curves(rows), f"loss curves, cohort {cohort}",
                f"Cohort {cohort}: loss per epoch per configuration, with the chance loss H(p)."))
    if not section.blocks:
        section.empty = "no finished run recorded per-epoch curves"
    return section


def probes_section(probes: Sequence[StudyProbe], manifests: Mapping[str, Manifest]) -> Section:
    """Section 5: t-SNE grids per layer of each probed study model and of the digits control, and
    separability by depth."""
    section = Section("probes", "Layer probes (t-SNE)", intro=(
        "Validation patients' pooled features at each tapped layer, embedded in 2-D with openTSNE and "
        "coloured by class. Separability is the leave-one-out 5-nearest-neighbour balanced accuracy in "
        "the embedding (chance 0.5). A model that learnt the label separates the classes in its deep "
        "layers; the MNIST-digits control shows what a learnable signal looks like in the same "
        "pipeline. One seed run per study is probed. With few validation samples (n in the table) the "
        "leave-one-out score is noisy and can fall well below 0.5 by chance alone: read it beside n and "
        "the linear-probe AUC."))
    if not probes:
        section.empty = ("no trial saved layer features: run the study with `--probe` (the quick demo "
                         "runs without probes) to get t-SNE grids and separability by depth")
        return section
    for probe in probes:
        labels, names = np.asarray(probe.run.result.labels), dict(figures.CLASS_NAMES)
        manifest = manifests.get(probe.study.cohort)
        if probe.study.control and manifest is not None and manifest.folder is not None:
            digits = digit_classes(manifest.folder)
            labels = np.array([digits[i] for i in probe.run.result.ids])
            names = {d: f"digit {d}" for d in sorted(set(labels.tolist()))}
        embeddings = [figures.Embedding(layer.layer, layer.embedding, labels, layer.separability)
                      for layer in probe.layers]
        kind = "positive control" if probe.study.control else "study model"
        section.blocks.append(figure_block(
            figures.tsne_grid(f"{probe.name} ({kind}), seed {probe.run.seed}", embeddings, names),
            f"t-SNE of each layer, {probe.name}",
            f"{probe.name}: t-SNE embedding per layer (shallow to deep) of the validation set."))
    section.blocks.append(figure_block(
        figures.separability_curve({p.name: [(l.layer, l.separability) for l in p.layers] for p in probes}),
        "separability by layer depth", "Separability by layer depth for every probed model."))
    section.blocks.append(table_block(
        ["model", "validation n", "layer", "depth", "separability (kNN)", "linear probe AUC"],
        [[p.name, len(p.run.result.ids), l.layer, l.depth, l.separability, l.linear_auc]
         for p in probes for l in p.layers]))
    return section


def power_section(verdicts: ReportVerdicts) -> Section:
    """Section 6: AUC against planted signal strength, from each phantom cohort's verdict."""
    section = Section("power", "Planted-signal power curve", intro=(
        "Phantom cohorts with a known planted signal of strength S (S = 0: none), each at its answer's AUC "
        "with the 90% interval and the verdict. A toolkit that can find a signal must rise above chance as "
        "S grows, and must never call a planted cohort no_signal."))
    points = [figures.PowerPoint(c.strength, c.lead.auc, c.lead.ci_low, c.lead.ci_high, c.verdict)
              for c in verdicts.cohorts if c.strength is not None and not c.control]
    if len(points) < 2:
        section.empty = ("no planted-signal cohorts were run" if not points else
                         "only one planted-signal strength was run: a power curve needs at least two")
        return section
    section.blocks.append(figure_block(
        figures.power_curve(points, verdicts.margin), "AUC against planted signal strength",
        "Each phantom cohort's answer: AUC with its 90% interval against planted strength S, with its verdict."))
    section.blocks.append(table_block(
        ["strength S", "AUC", "90% interval", "verdict"],
        [[p.strength, p.auc, f"[{p.low:.3f}, {p.high:.3f}]", p.verdict] for p in sorted(points, key=lambda p: p.strength)]))
    return section


def importance_section(studies: Sequence[StudyRuns]) -> Section:
    """Section 7: Optuna hyperparameter importance (fANOVA) and the full trial table."""
    section = Section("trials", "Hyperparameters and trials")
    for study in studies:
        importances, why_not = param_importances(study)
        title = f"{study.name} (cohort {study.cohort})"
        if importances:
            section.blocks.append(figure_block(
                figures.importance_bars(importances), f"hyperparameter importance, {study.name}",
                f"{title}: fANOVA importance of each varied hyperparameter for the validation AUC "
                "of the seed runs (null runs left out)."))
        else:
            section.blocks.append(text_block(f"No importance for {title}: {why_not}."))
        section.blocks.append(table_block(
            ["trial", "state", "configuration", "seed", "null", "val AUC", "parameters", "note"],
            [[t.number, t.state, t.config, t.seed, t.null, t.val_auc,
              ", ".join(f"{k}={v}" for k, v in sorted(t.params.items())), t.note or ""] for t in study.trials],
            title=f"All trials of {title}"))
    if not studies:
        section.empty = "no study was given"
    return section


def param_importances(study: StudyRuns) -> tuple[dict[str, float], str]:
    """(importances, "") or ({}, the reason none are computed): fANOVA over the seed runs' val AUC
    for the parameters that take more than one value, via ``optuna.importance``."""
    import optuna

    trials = [t for t in study.frozen if t.state == optuna.trial.TrialState.COMPLETE
              and not t.user_attrs.get("null", False) and t.value is not None]
    varying = sorted(name for name in {k for t in trials for k in t.params}
                     if name != "seed" and len({repr(t.params.get(name)) for t in trials}) > 1)
    if len(varying) < 2:
        return {}, f"{len(varying)} hyperparameter(s) vary, importance needs at least 2"
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return {}, f"{len(trials)} finished seed runs, importance needs at least {MIN_IMPORTANCE_TRIALS}"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created in memory" line
    try:
        scratch = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    scratch.add_trials(trials)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(scratch, evaluator=evaluator, params=varying)), ""


def data_section(manifests: dict[str, Manifest]) -> Section:
    """Section 8: each cohort's manifest summary: patients, labels, modalities, planes, exclusions."""
    section = Section("data", "Data")
    for cohort, manifest in manifests.items():
        summary = manifest.summary()
        section.blocks.append(table_block(
            ["dataset", "patients", "usable", "quarantined", "labels (usable)", "preprocess hash"],
            [[summary["dataset"], summary["patients"], summary["ok"], summary["quarantined"],
              ", ".join(f"{k}: {v}" for k, v in sorted(summary["labels_ok"].items())),
              summary["preprocess_hash"]]], title=f"Cohort {cohort}"))
        section.blocks.append(table_block(
            ["modality", "ok", "missing", "quarantined", "source planes"],
            [[m, s["ok"], s["missing"], s["quarantined"],
              ", ".join(f"{p}: {n}" for p, n in sorted(s["planes"].items())) or None]
             for m, s in summary["modalities"].items()]))
        exclusions = summary["exclusions"]
        if exclusions:
            section.blocks.append(table_block(["patient", "reason"],
                                              [[e["id"], e["reason"]] for e in exclusions],
                                              title="Excluded patients"))
        else:
            section.blocks.append(text_block("No patient was excluded."))
    if not manifests:
        section.empty = "no data manifest was found for these studies (run `mgmt-audit ingest` first)"
    return section


def reproducibility_section(facts: dict[str, Any]) -> Section:
    """Section 9: package versions, command line, profile, device, seeds, storage, git commit."""
    rows = [[key, Cell(str(value))] for key, value in facts.items()]
    return Section("reproducibility", "Reproducibility", blocks=[table_block(["item", "value"], rows)])
