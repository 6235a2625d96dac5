"""``mgmt-audit demo --quick`` end to end: the planted signal is found, the null cohort is not
called a signal, the report and summary are written, and the command prints the report path."""

from __future__ import annotations

import json
import time

import pytest
from demo_run import quick_demo

from mgmt_audit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    started = time.perf_counter()
    result, lines = quick_demo(tmp_path_factory)
    return result, lines, time.perf_counter() - started


def test_quick_demo_finds_the_planted_signal_and_excludes_the_margin_on_the_null(demo):
    result, _, _ = demo
    assert {k: result.verdicts[k] for k in ("null", "signal")} == {"null": "no_signal", "signal": "signal"}
    # the leakage pair's cohort has no signal and its answer splits patients: 51 test patients neither
    # reject chance nor exclude the margin (seed 0's patient split: AUC 0.537 [0.399, 0.675], p = 0.33)
    assert result.verdicts["leak"] == "inconclusive"
    summary = json.loads(result.report.with_name("summary.json").read_text())
    assert summary["verdicts"] == result.verdicts and summary["margin"] == 0.65
    assert {s["cohort"]: s["planted_strength"] for s in summary["studies"]} == {"null": 0.0, "signal": 1.0,
                                                                                 "leak": 0.0}
    assert all(s["null_trials"] >= 1 for s in summary["studies"] if s["cohort"] != "leak")
    for cohort in (c for c in summary["cohorts"] if c["cohort"] != "leak"):
        answer = cohort["answers"][0]
        assert answer["design"] == "held-out test" and cohort["status"] == "right"
        assert answer["estimate"]["n_pos"] + answer["estimate"]["n_neg"] == 96
        assert answer["estimate"]["n_runs"] == 2  # the selected configuration's two seeds, judged together
    null = summary["cohorts"][0]["answers"][0]
    assert null["ci_high"] < 0.65 and null["bound_words"].startswith("AUC >= 0.65 excluded")


def test_quick_demo_shows_the_leakage_pair_and_the_acquisition_baseline(demo):
    result, _, _ = demo
    summary = json.loads(result.report.with_name("summary.json").read_text())
    [pair] = summary["leakage"]
    assert pair["cohort"] == "leak" and pair["slice_configuration"].endswith("(split_unit=slice)")
    assert pair["slice_auc"] > pair["patient_auc"], pair
    baselines = {c["cache"]: c for c in summary["confounds"]}
    assert set(baselines) == {"null", "signal", "leak", "confound"}
    assert baselines["confound"]["verdict"] == "signal" and baselines["confound"]["auc"] >= 0.75
    assert all(baselines[c]["auc"] < 0.75 and baselines[c]["verdict"] != "signal" for c in ("null", "signal", "leak"))
    html = result.report.read_text()
    assert "Slice-level leakage" in html and "Acquisition baseline beside the image models" in html


def test_quick_demo_stays_within_its_time_budget(demo):
    _, lines, seconds = demo
    # The promise is 3 minutes on 2 cores; in two clean-clone CI runs it took 135 s and 109 s here (alone: 158 s).
    assert seconds < 180, f"quick demo took {seconds:.0f} s (budget 180 s on 2 CPU cores)"
    # every xdist worker reads the log of the run that did the work, which logged every stage
    assert any("writing 240 phantom patients" in line for line in lines)
    assert any(line.startswith("building the report") for line in lines)


def test_demo_command_prints_the_report_path(demo, capsys):
    result, _, _ = demo
    # a re-run over the finished work only rebuilds the report
    assert main(["demo", "--quick", "--out", str(result.report.parent)]) == 0
    out = capsys.readouterr().out
    assert f"report: {result.report}" in out
    assert "null -> no_signal" in out and "signal -> signal" in out and "leak -> " in out
