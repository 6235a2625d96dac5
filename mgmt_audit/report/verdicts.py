"""Verdicts for the report, all by :func:`mgmt_audit.analysis.verdict.judge`: one per configuration
and one per cohort.

A study searches configurations on its validation patients; the configuration with the best mean
validation AUC over its seeds is the study's answer, judged on the held-out test patients that
search and early stopping never saw (design ``held-out test``), against the study's retrained
label-permutation trials on the same patients. Without a test set the answer is judged on the
validation patients themselves and is selection-adjusted for every configuration the study tried
(pruned and failed included). With S studies on one cohort each answer is also adjusted for the S
(Šidák), so a cohort is ``signal`` when any study's answer is, ``signal_below_margin`` when one is
that and none is ``signal``, ``no_signal`` only when every study's answer is ``no_signal`` (each must
exclude the margin), and ``inconclusive`` otherwise. Every configuration row is judged the same way,
so no row claims more than the study's answer would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mgmt_audit.analysis.verdict import (
    HELD_OUT_TEST,
    INCONCLUSIVE,
    NO_SIGNAL,
    OUT_OF_FOLD,
    SIGNAL,
    SIGNAL_BELOW_MARGIN,
    Evidence,
    Verdict,
    judge,
)
from mgmt_audit.report.groups import Group, null_evaluation_aucs


@dataclass(frozen=True)
class ConfigurationVerdict:
    """One configuration's verdict; ``selected`` when it is its study's answer (best validation AUC)."""

    group: Group
    verdict: Verdict
    selected: bool


@dataclass(frozen=True)
class CohortVerdict:
    """A cohort's verdict from its studies' answers, with what a phantom cohort should give.

    ``expected``: for a cohort with a planted strength, what a trustworthy audit must (or must
    never) say; ``status``: ``right`` / ``wrong`` against it, ``honest`` for an allowed but weaker
    answer, None without an expectation (real data).
    """

    cohort: str
    verdict: str
    reason: str
    answers: tuple[ConfigurationVerdict, ...]
    strength: float | None
    control: bool

    @property
    def lead(self) -> Verdict:
        """The answer the cohort's verdict comes from (the strongest claim among its studies)."""
        order = (SIGNAL, SIGNAL_BELOW_MARGIN, INCONCLUSIVE, NO_SIGNAL)
        return min(self.answers, key=lambda a: order.index(a.verdict.verdict)).verdict

    @property
    def expected(self) -> str | None:
        if self.control:
            return "signal (a learnable positive control)"
        if self.strength is None:
            return None
        if self.strength == 0:
            return "no_signal (nothing planted), never signal"
        return "a signal was planted: never no_signal"

    @property
    def status(self) -> str | None:
        if self.control:
            return "right" if self.verdict == SIGNAL else "wrong"
        if self.strength is None:
            return None
        if self.strength == 0:
            return {NO_SIGNAL: "right", INCONCLUSIVE: "honest"}.get(self.verdict, "wrong")
        return {SIGNAL: "right", NO_SIGNAL: "wrong"}.get(self.verdict, "honest")


@dataclass(frozen=True)
class ReportVerdicts:
    configurations: tuple[ConfigurationVerdict, ...]
    cohorts: tuple[CohortVerdict, ...]
    margin: float

    def for_group(self, group: Group) -> ConfigurationVerdict:
        return next(c for c in self.configurations if c.group is group)


def judge_report(
    groups: Sequence[Group], margin: float,
    separability: Mapping[str, float] | None = None, control_separability: float | None = None,
) -> ReportVerdicts:
    """Every configuration's and every cohort's verdict at ``margin`` (see the module docstring)."""
    by_cohort: dict[str, list[Group]] = {}
    for group in groups:
        by_cohort.setdefault(group.study.cohort, []).append(group)
    configurations: list[ConfigurationVerdict] = []
    cohorts: list[CohortVerdict] = []
    for cohort, members in by_cohort.items():
        studies = list(dict.fromkeys(g.study.name for g in members))
        answers = []
        for name in studies:
            in_study = [g for g in members if g.study.name == name]
            # a slice-split (leaked) configuration is never a study's answer while a patient-split one ran
            best = max([g for g in in_study if not g.leaked] or in_study, key=lambda g: g.val_auc)
            for group in in_study:
                control = None if group.study.control else control_separability
                result = ConfigurationVerdict(
                    group, _judge(group, margin, len(studies), separability, control), group is best)
                configurations.append(result)
                if group is best:
                    answers.append(result)
        first = members[0].study
        label, reason = _combine(answers)
        cohorts.append(CohortVerdict(cohort, label, reason, tuple(answers), first.strength, first.control))
    return ReportVerdicts(tuple(configurations), tuple(cohorts), margin)


def _judge(group: Group, margin: float, n_studies: int, separability: Mapping[str, float] | None,
           control: float | None) -> Verdict:
    design = group.design
    selection = n_studies if design in (HELD_OUT_TEST, OUT_OF_FOLD) else n_studies * group.study.configurations_tried
    curves = [r.curves for r in group.results if r.curves]
    return judge(Evidence(
        name=group.name, runs=group.evaluation, design=design, selection=selection,
        pipeline_null=null_evaluation_aucs(group.study, design) or None, margin=margin,
        train_losses=[[e["train_loss"] for e in c] for c in curves],
        val_losses=[[e["val_loss"] for e in c] for c in curves],
        positive_share=group.positive_share,
        probe_separability=(separability or {}).get(group.name),
        control_separability=control,
    ))


def _combine(answers: Sequence[ConfigurationVerdict]) -> tuple[str, str]:
    labels = [a.verdict.verdict for a in answers]
    n = len(answers)
    studies = "the study's answer" if n == 1 else f"{n} studies' answers"
    for label in (SIGNAL, SIGNAL_BELOW_MARGIN):
        if label in labels:
            source = answers[labels.index(label)]
            return label, f"{source.group.study.name}: {source.verdict.reason}"
    if set(labels) == {NO_SIGNAL}:
        return NO_SIGNAL, f"{studies}: {answers[0].verdict.reason}" if n == 1 else (
            f"every one of {studies} excludes the margin: " + "; ".join(
                f"{a.group.study.name} upper bound {a.verdict.ci_high:.3f}" for a in answers))
    source = next(a for a in answers if a.verdict.verdict == INCONCLUSIVE)
    return INCONCLUSIVE, f"{source.group.study.name}: {source.verdict.reason}"
