"""One function per report section: verdicts and grouped trials in, a
:class:`~mgmt_audit.report.page.Section` out. Every number shown is read from the verdicts (one set
of numbers); configurations are named by their keys (:mod:`mgmt_audit.report.keys`). A section with
nothing to show says why instead of vanishing (the scratch vs pretrained comparison, which applies
only to studies that searched their initialisation, is left out for the others)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mgmt_audit.analysis.bimodality import kde_curves
from mgmt_audit.analysis.chance_loss import label_entropy
from mgmt_audit.analysis.confounds import ConfoundBaseline
from mgmt_audit.analysis.verdict import Bimodality, PipelineNull, Verdict
from mgmt_audit.data.controls import DATASET as DIGITS_DATASET
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.errors import AnalysisInputError
from mgmt_audit.report import figures
from mgmt_audit.report.collect import StudyRuns
from mgmt_audit.report.groups import Group
from mgmt_audit.report.keys import SELECTED, ConfigKeys, config_keys
from mgmt_audit.report.page import Cell, Section, details_block, figure_block, table_block, text_block
from mgmt_audit.report.probing import StudyProbe
from mgmt_audit.report.provenance import StudyRun, merged
from mgmt_audit.report.verdicts import ConfigurationVerdict, ReportVerdicts
from mgmt_audit.words import counted


def auc_interval(v: Verdict | ConfoundBaseline) -> str:
    """An AUC with its 90 % interval as the report's tables print it: ``0.680 [0.518, 0.843]``."""
    return f"{v.auc:.3f} [{v.ci_low:.3f}, {v.ci_high:.3f}]"

MAX_PANELS = 8  # seed runs shown per configuration in the probability histograms
MIN_IMPORTANCE_TRIALS = 6
MIN_BAND_TRIALS = 5  # null trials before a band of their central 90 % is drawn
STATUS_CSS = {"right": "verdict-right", "wrong": "verdict-wrong"}


def verdict_section(verdicts: ReportVerdicts, keys: ConfigKeys) -> Section:
    """Section 1: the answer first (one row per cohort), the centrepiece figure (AUC across seeds
    against the null band and the margin), every configuration in one row, and the full evidence per
    configuration folded."""
    margin = verdicts.margin
    section = Section("verdicts", "Verdicts")
    if not verdicts.cohorts:
        section.empty = "no trial finished: there is nothing to judge yet"
        return section
    rows = []
    for c in verdicts.cohorts:
        v = c.lead
        rows.append([
            c.cohort, None if c.strength is None else f"{c.strength:g}", f"{v.estimate.n_pos} / {v.estimate.n_neg}",
            v.design, f"{margin:g}", auc_interval(v),
            Cell(c.verdict, STATUS_CSS.get(c.status or "", "verdict-neutral")), v.bound_words, c.expected])
    section.blocks.append(table_block(
        ["cohort", "planted S", "n (pos / neg)", "evaluated on", "margin", "AUC [90% interval]", "verdict",
         "what the data exclude", "expected"], rows, title="By cohort",
        note=(f"signal: beyond chance after every selection, AUC >= {margin:g} not excluded · "
              f"signal_below_margin: beyond chance, AUC >= {margin:g} excluded · no_signal: not beyond "
              f"chance, AUC >= {margin:g} and an inverted signal of that size excluded · inconclusive: "
              "anything else. One-sided tests at alpha 0.05 with their bounds (the 90% interval). Each "
              f"study's answer ({SELECTED}) is its configuration with the best validation AUC. Colour "
              "against the phantom's expectation: green right, red wrong, grey an allowed weaker "
              "answer or no expectation (real data).")))
    members: dict[str, list[ConfigurationVerdict]] = {}
    for cv in verdicts.configurations:
        members.setdefault(cv.group.study.cohort, []).append(cv)
    section.blocks.append(figure_block(
        figures.auc_overview([
            figures.AucPanel(f"{c.cohort} · {c.verdict}"
                             + ("" if c.strength is None else f" (planted S = {c.strength:g})"),
                             [_auc_group(cv, keys) for cv in members[c.cohort]])
            for c in verdicts.cohorts], margin),
        "AUC per seed and configuration, per cohort, with the null band and the margin",
        "AUC across seeds: each dot one seed run on the evaluation patients, the black square the mean "
        "over seeds with its 90% interval (DeLong, the seeds' covariance estimated), grey the central "
        f"90% of the study's retrained label-permutation trials (drawn from {MIN_BAND_TRIALS} trials on), "
        f"dashed chance, orange the margin. {SELECTED} marks each study's answer."))
    section.blocks.append(table_block(
        ["key", "study", "configuration"], keys.rows(), title="Configurations",
        note="Figures and tables name each configuration by its key."))
    section.blocks.append(table_block(
        ["cohort", "key", "seeds", "validation AUC", "evaluation AUC [90%]", "seed AUCs (min–max)",
         "label-permutation null", "verdict"],
        [[cv.group.study.cohort, _key(cv, keys), cv.verdict.estimate.n_runs, cv.group.val_auc,
          auc_interval(cv.verdict),
          f"{min(cv.verdict.estimate.run_aucs):.3f}–{max(cv.verdict.estimate.run_aucs):.3f}",
          null_words(cv.verdict.pipeline_null),
          Cell(cv.verdict.verdict + (" (leaked: slice split)" if cv.group.leaked else ""), "verdict-neutral")]
         for cv in verdicts.configurations],
        title="By configuration",
        note=("Each verdict is adjusted for the studies run on its cohort (or, judged on the validation "
              "patients, for every configuration its study tried). Label-permutation null: the study's "
              "retrained trials with permuted training labels, scored on the same evaluation patients; "
              "their p, (1 + #null AUCs >= mean AUC) / (1 + runs), is shown only when enough trials ran "
              "for it to reach alpha after selection.")))
    section.blocks.append(details_block(
        f"Evidence per configuration ({len(verdicts.configurations)})", [evidence_table(verdicts, keys)]))
    return section


def init_section(verdicts: ReportVerdicts) -> Section | None:
    """Scratch against pretrained, side by side, for the studies that searched their initialisation
    (search key ``init``): one row per cohort, study and the rest of the configuration, one column per
    initialisation with that configuration's AUC [90%] and verdict (the verdicts of section 1). None
    when no study searched ``init`` (the comparison does not apply)."""
    from mgmt_audit.report.collect import config_label
    from mgmt_audit.study.spec import INIT_KEY, INIT_SCRATCH

    cells: dict[tuple[str, str, str], dict[str, Cell]] = {}
    inits: list[str] = []
    for cv in verdicts.configurations:
        params = cv.group.runs[0].params
        if INIT_KEY not in params:
            continue
        init = str(params[INIT_KEY])
        inits.extend([init] if init not in inits else [])
        family = cv.group.study.attrs.get("spec", {}).get("model", {}).get("family", cv.group.study.name)
        rest = config_label(family, {k: v for k, v in params.items() if k != INIT_KEY})
        v = cv.verdict
        cells.setdefault((cv.group.study.cohort, cv.group.study.name, rest), {})[init] = Cell(
            f"{auc_interval(v)} {v.verdict}", "verdict-neutral")
    if not cells:
        return None
    inits.sort(key=lambda init: init != INIT_SCRATCH)  # scratch first, the others as the trials drew them
    section = Section("initialisation", "Scratch vs pretrained")
    section.blocks.append(table_block(
        ["cohort", "study", "configuration", *inits],
        [[*row, *(found.get(init) for init in inits)] for row, found in cells.items()],
        note=("Each cell: the configuration's evaluation AUC [90% interval] and verdict, as in the "
              "'By configuration' table. scratch: random initialisation; file: the family's local "
              "weights file (e.g. ImageNet); a method name: the project's own self-supervised "
              "pretraining on the training patients.")))
    return section


def _key(cv: ConfigurationVerdict, keys: ConfigKeys) -> str:
    return (f"{SELECTED} " if cv.selected else "") + keys(cv.group.study.name, cv.group.config)


def _auc_group(cv: ConfigurationVerdict, keys: ConfigKeys) -> figures.AucGroup:
    v = cv.verdict
    null = v.pipeline_null
    band = None if null is None or null.n < MIN_BAND_TRIALS else (null.low, null.high)
    return figures.AucGroup(keys(cv.group.study.name, cv.group.config), v.estimate.run_aucs, v.auc,
                            v.ci_low, v.ci_high, band, cv.selected)


def null_words(null: PipelineNull | None) -> str:
    """The label-permutation null as a table shows it: its p only when enough trials ran to decide."""
    if null is None:
        return "none run"
    runs = counted(null.n, "run")
    if not null.usable:
        return (f"{runs}: too few for a p (needs {null.needed} null trials, so that its smallest p, 1 / (n + 1), "
                "can fall below alpha after the selection adjustment)")
    return f"p = {null.p_value:.3f} ({runs})"


def evidence_table(verdicts: ReportVerdicts, keys: ConfigKeys):
    """Every configuration's evidence in one row each (what each verdict's sentence and supporting
    phrases say), with the methods, shared by the rows, stated once below."""
    rows, methods = [], {}
    for cv in verdicts.configurations:
        v = cv.verdict
        methods.setdefault(v.estimate.method, None)
        methods.setdefault(v.test.method, None)
        rows.append([
            cv.group.study.cohort, _key(cv, keys), f"{v.estimate.n_pos} / {v.estimate.n_neg}",
            _p_words(v), None if v.test.selection == 1 else v.estimate.auc_adjusted,
            v.test.expected_best_null_auc, v.detectable_auc, _shape_words(v.bimodality),
            "; ".join(f"{p.split} {p.n_at_chance} / {p.n_runs}" for p in v.loss) or None,
            _separability_words(v), v.reason])
    return table_block(
        ["cohort", "key", "n (pos / neg)", "p vs chance (adjusted)", "AUC corrected for selection",
         "best of N null AUCs", "AUC detectable (80% power)", "multimodal runs (dip p range)",
         "loss ends at H(p)", "final-layer separability (control)", "why this verdict"], rows,
        note=("Methods: " + "; ".join(methods) + ". p vs chance: one-sided, then Šidák-adjusted for the "
              "selection; the corrected AUC is the winner's-curse (median-unbiased) estimate and 'best of "
              "N' the AUC the best of N null configurations reaches, both only after a selection. "
              "Multimodal: runs whose predictions the dip test calls multimodal at alpha 0.05. Loss: runs "
              "whose last 3 epochs lie within 0.01 of the chance loss H(p). Separability: kNN balanced "
              "accuracy of the deepest probed layer, beside the MNIST control's."))


def _p_words(v: Verdict) -> str:
    if v.test.selection == 1:
        return f"{v.test.p_value:.2g}"
    return f"{v.test.p_value:.2g} ({v.test.p_value_adjusted:.2g} among {v.test.selection})"


def _shape_words(shape: Bimodality | None) -> str | None:
    if shape is None:
        return None
    tested = [p for p in shape.dip_p if p is not None]
    words = f"{shape.n_multimodal} / {shape.n_runs}"
    if tested:
        words += f" ({min(tested):.2g}–{max(tested):.2g})"
    constant = shape.n_runs - len(tested)
    return words + (f"; {constant} constant" if constant else "")


def _separability_words(v: Verdict) -> str | None:
    if v.probe_separability is None:
        return None
    control = "" if v.control_separability is None else f" ({v.control_separability:.2f})"
    return f"{v.probe_separability:.2f}{control}"


def probability_section(verdicts: ReportVerdicts, keys: ConfigKeys) -> Section:
    """Section 2: predicted-probability histograms with KDE per seed run, coloured by true label."""
    section = Section("probabilities", "Predicted probabilities by true label", intro=(
        "Each seed run's predicted probability of label 1 on the evaluation patients, split by true "
        "label, with Gaussian KDE curves. A model with no signal gives one lump near the base rate for "
        "both classes. Each panel's title gives Sarle's bimodality coefficient BC (> 0.555 suggests two "
        f"modes) and Hartigan's dip-test p (small = not unimodal), as in the verdict. At most {MAX_PANELS} "
        "seeds are shown per configuration."))
    panels = []
    for cv in verdicts.configurations:
        runs = zip(cv.group.runs[:MAX_PANELS], cv.group.evaluation[:MAX_PANELS])
        panels.extend(_panel(f"{cv.group.study.cohort} · {_key(cv, keys)} · seed {trial.seed}", run.labels,
                             run.scores, cv.verdict.bimodality, i) for i, (trial, run) in enumerate(runs))
    if not panels:
        section.empty = "no finished seed runs: no predictions to show"
        return section
    section.blocks.append(figure_block(
        figures.probability_histograms(panels), "predicted probabilities per seed run",
        "Predicted probabilities per cohort, configuration and seed run."))
    return section


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


def loss_section(groups: Sequence[Group], keys: ConfigKeys) -> Section:
    """Section 3: training and validation loss per epoch with the chance loss H(p)."""
    section = Section("loss", "Training and validation loss", intro=(
        "Binary cross-entropy per epoch for every seed run (cross-validation: fold 0). A model that "
        "ignores its input converges to the label entropy H(p) of the positive share p (dotted; p is "
        "the validation set's share, the split is stratified), not to 0.69 exactly; a validation loss "
        "that never goes below it has learnt nothing beyond the base rate."))
    panels = []
    for g in groups:
        runs = [r for r in g.runs if r.result.curves]
        if runs:
            first = [[e for e in r.result.curves if e.get("fold", 0) == 0] for r in runs]
            sets = [figures.CurveSet(f"seed {r.seed}", [e["train_loss"] for e in curves],
                                     [e["val_loss"] for e in curves]) for r, curves in zip(runs, first)]
            chance = label_entropy(g.positive_share)
            panels.append(figures.LossPanel(f"{g.study.cohort} · {keys(g.study.name, g.config)} · "
                                            f"H(p) {chance:.3f}", sets, chance))
    if not panels:
        section.empty = "no finished run recorded per-epoch curves"
        return section
    section.blocks.append(figure_block(figures.loss_curves(panels), "loss curves per configuration",
                                       "Loss per epoch per cohort and configuration, with the chance loss H(p)."))
    return section


def probes_section(probes: Sequence[StudyProbe], manifests: Mapping[str, Manifest], keys: ConfigKeys) -> Section:
    """Section 4: t-SNE of each tapped layer of each probed model (the digits control included) and
    separability by depth."""
    section = Section("probes", "Layer probes (t-SNE)", intro=(
        "Validation patients' pooled features at each tapped layer (one seed run per study), embedded in "
        "2-D with openTSNE and coloured by class. Separability is the leave-one-out 5-nearest-neighbour "
        "balanced accuracy in the embedding (chance 0.5). A model that learnt the label separates the "
        "classes in its deep layers; the MNIST-digits control (label 1: digit >= 5) shows what a "
        "learnable signal looks like in the same pipeline. With few validation samples (n in the table) "
        "the score is noisy and can fall well below 0.5 by chance alone: read it beside n and the "
        "linear-probe AUC."))
    if not probes:
        section.empty = ("no trial saved layer features: run the study with `--probe` (the quick demo "
                         "runs without probes) to get t-SNE grids and separability by depth")
        return section
    names = {p.name: f"{p.study.cohort} · {keys(p.study.name, p.run.config)}" for p in probes}
    embeddings = [figures.Embedding(f"{names[p.name]} · {layer.layer}", layer.embedding,
                                    np.asarray(p.run.result.labels), layer.separability)
                  for p in probes for layer in p.layers]
    section.blocks.append(figure_block(
        figures.tsne_grid(embeddings, figures.CLASS_NAMES), "t-SNE of each layer of each probed model",
        "t-SNE embedding per probed model and layer (shallow to deep) of the validation set; for the "
        "digits control, label 1 is a digit >= 5."))
    control = {names[p.name] + " (control)": p for p in probes if p.study.control}
    panels: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for p in probes:
        if not p.study.control:
            panels.setdefault(p.study.name, {})[names[p.name]] = [(l.layer, l.separability) for l in p.layers]
    for series in panels.values():
        series.update({name: [(l.layer, l.separability) for l in p.layers] for name, p in control.items()})
    if not panels:
        panels = {"positive control": {name: [(l.layer, l.separability) for l in p.layers]
                                       for name, p in control.items()}}
    section.blocks.append(figure_block(
        figures.separability_curve(panels), "separability by layer depth",
        "Separability by layer depth: one panel per study, a line per cohort, the digits control in each."))
    depths = sorted({l.depth for p in probes for l in p.layers})
    section.blocks.append(table_block(
        ["model", "validation n", *(f"depth {d}: kNN / linear AUC" for d in depths)],
        [[names[p.name] + (" (control)" if p.study.control else ""), len(p.run.result.ids),
          *(_layer_cell(p, d) for d in depths)] for p in probes],
        note="Per layer: the kNN separability in the t-SNE embedding, then the linear probe's AUC."))
    return section


def _layer_cell(probe: StudyProbe, depth: int) -> str | None:
    layer = next((l for l in probe.layers if l.depth == depth), None)
    if layer is None:
        return None
    linear = "–" if layer.linear_auc is None else f"{layer.linear_auc:.2f}"
    return f"{layer.layer}: {layer.separability:.2f} / {linear}"


def power_section(verdicts: ReportVerdicts) -> Section:
    """Section 5: AUC against planted signal strength, from each phantom cohort's verdict."""
    section = Section("power", "Planted-signal power curve", intro=(
        "Phantom cohorts with a known planted signal of strength S (S = 0: none), each at its answer's AUC "
        "with the 90% interval and the verdict. A toolkit that can find a signal must rise above chance as "
        "S grows, and must never call a planted cohort no_signal."))
    # a leakage pair's cohort (a study that also split slices) runs another model on another cohort
    # size: it is a control of the pipeline, not a point of this series
    leak_cohorts = {cv.group.study.cohort for cv in verdicts.configurations if cv.group.leaked}
    points = [figures.PowerPoint(c.strength, c.lead.auc, c.lead.ci_low, c.lead.ci_high, c.verdict)
              for c in verdicts.cohorts if c.strength is not None and not c.control and c.cohort not in leak_cohorts]
    if len(points) < 2:
        section.empty = ("no planted-signal cohorts were run" if not points else
                         "only one planted-signal strength was run: a power curve needs at least two")
        return section
    section.blocks.append(figure_block(
        figures.power_curve(points, verdicts.margin), "AUC against planted signal strength",
        "Each phantom cohort's answer: AUC with its 90% interval against planted strength S; the marker "
        "is its verdict (numbers in the By cohort table)."))
    return section


def importance_section(studies: Sequence[StudyRuns], keys: ConfigKeys | None = None) -> Section:
    """Section 6: Optuna hyperparameter importance (fANOVA) and every trial, folded (configurations
    named by ``keys``, by default those of ``studies``)."""
    section = Section("trials", "Hyperparameters and trials")
    keys = keys or config_keys(studies)
    if not studies:
        section.empty = "no study was given"
        return section
    missing: dict[str, list[str]] = {}
    for study in studies:
        importances, why_not = param_importances(study)
        title = f"{study.name} (cohort {study.cohort})"
        if importances:
            section.blocks.append(figure_block(
                figures.importance_bars(importances), f"hyperparameter importance, {study.name}",
                f"{title}: fANOVA importance of each varied hyperparameter for the validation AUC "
                "of the seed runs (null runs left out)."))
        else:
            missing.setdefault(f"{study.name}: {why_not}", []).append(study.cohort)
    if missing:
        section.blocks.append(text_block("No hyperparameter importance for " + "; ".join(
            f"{reason} (cohort{'s' if len(cohorts) > 1 else ''} {', '.join(cohorts)})"
            for reason, cohorts in missing.items()) + "."))
    trials = [t for s in studies for t in s.trials]
    section.blocks.append(details_block(f"All {len(trials)} trials", [table_block(
        ["study", "cohort", "trial", "state", "key", "seed", "null", "validation AUC", "note"],
        [[s.name, s.cohort, t.number, t.state, keys(s.name, t.config), t.seed, t.null, t.val_auc, t.note]
         for s in studies for t in s.trials])]))
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
    values = {t.value for t in trials}
    if len(values) == 1:  # fANOVA's share of a zero variance is undefined (optuna raises)
        return {}, (f"every finished seed run has validation AUC {values.pop():.3f}: no variance for "
                    "a hyperparameter to explain, importance undefined")
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created in memory" line
    try:
        scratch = optuna.create_study(direction="maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    scratch.add_trials(trials)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(scratch, evaluator=evaluator, params=varying)), ""


def data_section(manifests: Mapping[str, Manifest]) -> Section:
    """Section 7: each cohort's manifest in one row (patients, labels, images, source planes), then
    any excluded patients with their reasons."""
    section = Section("data", "Data")
    if not manifests:
        section.empty = "no data manifest was found for these studies (run `mgmt-audit ingest` first)"
        return section
    rows, exclusions = [], []
    for cohort, manifest in manifests.items():
        summary = manifest.summary()
        digits = manifest.dataset == DIGITS_DATASET
        images = "; ".join(
            ("MNIST digit images" if digits else m)
            + f": {s['ok']} ok, {s['missing']} missing, {s['quarantined']} quarantined"
            for m, s in summary["modalities"].items())
        planes = "; ".join(", ".join(f"{p} {n}" for p, n in sorted(s["planes"].items()))
                           for s in summary["modalities"].values())
        rows.append([cohort, summary["dataset"], summary["patients"], summary["ok"],
                     ", ".join(f"{k}: {v}" for k, v in sorted(summary["labels_ok"].items())), images,
                     "– (not MRI)" if digits else planes or None, summary["preprocess_hash"]])
        exclusions.extend([cohort, e["id"], e["reason"]] for e in summary["exclusions"])
    section.blocks.append(table_block(
        ["cohort", "dataset", "patients", "usable", "labels (usable)", "images", "source planes (MRI)",
         "preprocess hash"], rows))
    section.blocks.append(table_block(["cohort", "patient", "reason"], exclusions, title="Excluded patients")
                          if exclusions else text_block("No patient was excluded."))
    return section


def reproducibility_section(facts: Mapping[str, Any], runs: Sequence[StudyRun]) -> Section:
    """Section 8: what each study ran (from its recorded runs), then versions, command line, devices,
    seeds, storage, git commit."""
    section = Section("reproducibility", "Reproducibility")
    if runs:
        section.blocks.append(table_block(
            ["study", "cohorts", "profile", "spec hash", "model", "input", "training", "seeds", "trials",
             "patients per run"],
            [[r.study, ", ".join(cohorts), r.profile, r.spec_hash, r.model, r.input, r.training, r.seeds,
              r.trials, r.split] for r, cohorts in merged(runs)], title="What was run"))
    section.blocks.append(table_block(["item", "value"], [[key, Cell(str(value))] for key, value in facts.items()]))
    return section
