"""The report's selection rules (``mgmt_audit.report.verdicts``) on studies whose predictions are built
by counting, so each verdict is known: a study's answer judged on held-out test patients is adjusted
for the S studies run on its cohort; an answer judged on the validation patients the search used is
adjusted for every configuration tried, times S."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from exact_scores import exact_auc_scores
from report_factory import synthetic_run

from mgmt_audit.analysis.verdict import HELD_OUT_TEST, INCONCLUSIVE, SIGNAL, VALIDATION
from mgmt_audit.report.collect import StudyRuns, TrialRun
from mgmt_audit.report.groups import group_trials
from mgmt_audit.report.verdicts import judge_report


def fixed_study(root: Path, name: str, cohort: str, auc: float, *, configs: int = 1, test: bool = True) -> StudyRuns:
    """``configs`` configurations of one seed each, whose evaluation predictions (100 / 100 held-out test
    patients, or with ``test=False`` 30 / 30 validation patients) have exactly this AUC; no nulls."""
    trials = []
    for number in range(configs):
        base = synthetic_run(number, 0.0, test=False)
        y, s = exact_auc_scores(auc, *((100, 100) if test else (30, 30)))
        probs = (s / (s.max() + 1)).tolist()
        if test:
            ids = [f"{i:05d}" for i in range(200, 400)]
            result = replace(base, test_ids=ids, test_labels=y.tolist(), test_probs=probs)
        else:
            result = replace(base, ids=[f"{i:05d}" for i in range(60)], labels=y.tolist(), probs=probs)
        folder = result.save(root / name / str(number))
        trials.append(TrialRun(name, number, "COMPLETE", {"width": number}, 0, False, f"cfg-{number}",
                               result.val_auc, folder))
    return StudyRuns(name, cohort, trials)


def answers(*studies: StudyRuns):
    return judge_report(group_trials(studies), 0.65).cohorts


def test_held_out_answers_are_adjusted_for_the_studies_run_on_one_cohort(tmp_path):
    # AUC 0.59 on 100 / 100 test patients: exact one-sided p 0.0094 and a 90 % lower bound of 0.509,
    # signal alone; as one of two studies' answers on the cohort the Šidák lower bound falls to 0.493
    alone = answers(fixed_study(tmp_path, "a", "c", 0.59))
    assert [c.verdict for c in alone] == [SIGNAL]
    lead = alone[0].lead
    assert lead.design == HELD_OUT_TEST and lead.test.selection == 1 and lead.ci_low > 0.5
    pair = answers(fixed_study(tmp_path, "a", "c", 0.59), fixed_study(tmp_path, "b", "c", 0.59))
    assert [c.verdict for c in pair] == [INCONCLUSIVE] and "lower bound 0.493" in pair[0].reason
    for answer in pair[0].answers:
        assert answer.verdict.test.selection == 2
        assert answer.verdict.test.p_value_adjusted == pytest.approx(1 - (1 - lead.p_value) ** 2)
    # studies on other cohorts are no selection: each cohort keeps its own answer
    apart = answers(fixed_study(tmp_path, "a", "c", 0.59), fixed_study(tmp_path, "b", "d", 0.59))
    assert [c.verdict for c in apart] == [SIGNAL, SIGNAL]


def test_answers_judged_on_the_searched_validation_set_are_adjusted_for_every_configuration(tmp_path):
    # AUC 0.72 on 30 / 30 validation patients (p 0.0015): signal as the only configuration and as the
    # best of 10 (Šidák lower bound 0.510), not as the best of 20 (0.491), nor of 10 in each of 2 studies
    one = answers(fixed_study(tmp_path, "one", "c", 0.72, test=False))
    assert [c.verdict for c in one] == [SIGNAL] and one[0].lead.design == VALIDATION
    p = one[0].lead.p_value
    ten = answers(fixed_study(tmp_path, "ten", "c", 0.72, configs=10, test=False))
    assert [c.verdict for c in ten] == [SIGNAL] and ten[0].lead.test.selection == 10
    assert ten[0].lead.test.p_value_adjusted == pytest.approx(1 - (1 - p) ** 10)
    twenty = answers(fixed_study(tmp_path, "twenty", "c", 0.72, configs=20, test=False))
    assert [c.verdict for c in twenty] == [INCONCLUSIVE] and "lower bound 0.491" in twenty[0].reason
    two = answers(fixed_study(tmp_path, "ten", "c", 0.72, configs=10, test=False),
                  fixed_study(tmp_path, "ten2", "c", 0.72, configs=10, test=False))
    assert [c.verdict for c in two] == [INCONCLUSIVE]
    assert {a.verdict.test.selection for a in two[0].answers} == {20}
