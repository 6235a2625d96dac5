"""``mgmt-audit audit`` and ``mgmt-audit audit-claim`` through the CLI."""

import csv
import json

import numpy as np
import pytest
from exact_scores import exact_auc_scores

from mgmt_audit.analysis.audit import audit_predictions
from mgmt_audit.cli import main
from mgmt_audit.errors import AnalysisInputError


def _write(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _predictions(seed, d, runs=3, n_per_class=40):
    """Rows id,label,prob,run,split for ``runs`` seeds on the same validation patients."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n_per_class, int), np.zeros(n_per_class, int)]
    rows = []
    for run in range(runs):
        prob = 1 / (1 + np.exp(-(rng.normal(size=labels.size) + d * labels)))
        rows += [
            {"id": f"{10000 + i:05d}", "label": int(lab), "prob": f"{p:.6f}", "run": run,
             "split": "val"}
            for i, (lab, p) in enumerate(zip(labels, prob))
        ]
    return rows


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_audit_claim_of_the_best_of_ten_seeds(capsys):
    code, out, _ = _run(
        capsys,
        ["audit-claim", "--auc", "0.59", "--n-pos", "61", "--n-neg", "56", "--trials-tried", "10",
         "--json"],
    )
    assert code == 0
    result = json.loads(out)
    assert {"verdict", "auc", "ci_low", "ci_high", "margin", "p_value", "p_value_adjusted",
            "expected_best_null_auc", "explanation", "rounding", "inputs"} <= set(result)
    assert result["verdict"] == "inconclusive" and result["margin"] == 0.65
    assert result["bound_words"] == "cannot exclude AUC up to 0.68"
    assert result["rounding"] == {"low": 0.585, "high": 0.595, "verdict_low": "inconclusive",
                                  "verdict_high": "inconclusive", "depends_on_rounding": False}
    assert 0.57 < result["expected_best_null_auc"] < 0.61 and result["p_value_adjusted"] > 0.3
    assert result["ci_low"] < 0.5 < 0.65 < result["ci_high"]
    assert result["inputs"]["auc"] == {"text": "0.59", "value": 0.59, "decimals": 2, "percent": False}
    assert "best of 10" in result["explanation"] and "0.583" in result["explanation"]


def test_audit_claim_margin_percentages_rounding_and_bad_input(capsys):
    code, out, _ = _run(capsys, ["audit-claim", "--auc", "90%", "--n-pos", "60", "--n-neg", "60"])
    assert code == 0 and "verdict: signal (margin 0.65" in out
    _, out, _ = _run(capsys, ["audit-claim", "--auc", "0.6", "--n-pos", "300", "--n-neg", "300", "--json"])
    result = json.loads(out)
    assert result["rounding"]["depends_on_rounding"] and "depends on rounding" in result["reason"]
    _, out, _ = _run(capsys, ["audit-claim", "--auc", "0.6", "--n-pos", "300", "--n-neg", "300",
                              "--margin", "0.7", "--json"])
    assert json.loads(out)["verdict"] == "signal_below_margin" and json.loads(out)["margin"] == 0.7
    code, _, err = _run(capsys, ["audit-claim", "--auc", "83", "--n-pos", "6", "--n-neg", "6"])
    assert code == 2 and "not a proportion" in err and "83%" in err
    with pytest.raises(SystemExit):
        main(["audit-claim", "--auc", "0.7", "--n-pos", "6", "--n-neg", "6", "--margin", "0.4"])
    assert "margin is an AUC in (0.5, 1]" in capsys.readouterr().err


def test_audit_flags_a_patient_leaked_across_splits(tmp_path, capsys):
    rows = _predictions(0, 0.0, runs=1)
    rows.append({**rows[3], "split": "train"})
    path = _write(tmp_path / "pred.csv", rows)
    code, out, _ = _run(
        capsys,
        ["audit", str(path), "--id-col", "id", "--split-col", "split", "--eval-split", "val",
         "--json", "--out", str(tmp_path / "out")],
    )
    assert code == 0
    result = json.loads(out)
    assert result["leakage"]["n_leaked"] == 1
    assert result["leakage"]["leaked"][0] == {"run": "all", "id": "10003", "splits": ["train", "val"]}
    assert any("leak" in w for w in result["warnings"])
    assert json.loads((tmp_path / "out" / "audit.json").read_text()) == result
    code, out, _ = _run(capsys, ["audit", str(path), "--id-col", "id", "--split-col", "split"])
    assert "LEAK run all patient 10003: train, val" in out


def test_audit_judges_seeds_together_and_finds_a_strong_signal(tmp_path, capsys):
    strong = _write(tmp_path / "strong.csv", _predictions(1, 2.0))
    y, scores = exact_auc_scores(0.5, 40, 40)
    chance = _write(tmp_path / "chance.csv", [
        {"id": f"{10000 + i:05d}", "label": int(label), "prob": float(score), "run": run}
        for run in range(3) for i, (label, score) in enumerate(zip(y, scores))])
    argv = ["--run-col", "run", "--id-col", "id", "--trials-tried", "20", "--json"]
    _, out, _ = _run(capsys, ["audit", str(strong), *argv])
    result = json.loads(out)
    assert result["verdict"] == "signal" and len(result["runs"]) == 3
    assert result["pooling"] == "3 runs on the same patients (matched by patient ID): mean AUC, predictions"
    assert result["evidence"]["estimate"]["n_runs"] == 3
    assert result["evidence"]["test"]["selection"] == 20
    # three seeds at AUC exactly 0.5 on 40 / 40, the best of 20: not beyond chance, the margin excluded,
    # but after selection among 20 the lower bound reaches below 0.35 (an inverted signal not excluded)
    _, out, _ = _run(capsys, ["audit", str(chance), *argv])
    result = json.loads(out)
    assert (result["verdict"], result["auc"]) == ("inconclusive", 0.5) and result["p_value_adjusted"] > 0.5
    assert result["ci_high"] < 0.65 and result["ci_low"] < 0.35 and "inverted signal" in result["reason"]


def test_one_unusable_run_is_reported_and_the_rest_audited(tmp_path, capsys):
    rows = _predictions(3, 1.0, runs=3)
    rows = [r for r in rows if not (r["run"] == 1 and r["label"] == 0)]  # run 1: positives only
    path = _write(tmp_path / "p.csv", rows)
    code, out, _ = _run(capsys, ["audit", str(path), "--run-col", "run", "--id-col", "id", "--json"])
    assert code == 0
    result = json.loads(out)
    assert [r["run"] for r in result["runs"]] == ["0", "2"]
    assert result["unusable"][0]["run"] == "1" and "0 negative" in result["unusable"][0]["reason"]
    assert any("run 1 left out" in w for w in result["warnings"])


def test_slice_level_rows_are_averaged_per_patient(tmp_path, capsys):
    rows = _predictions(4, 1.0, runs=1)
    slices = [{**r, "prob": f"{float(r['prob']) + d:.6f}"} for r in rows for d in (-0.01, 0.0, 0.01)]
    path = _write(tmp_path / "slices.csv", slices)
    _, out, _ = _run(capsys, ["audit", str(path), "--id-col", "id", "--json"])
    result = json.loads(out)
    assert result["slice_rows"] == {"rows": 240, "patients": 80, "runs": ["all"]}
    assert result["evidence"]["estimate"]["n_pos"] + result["evidence"]["estimate"]["n_neg"] == 80
    assert any("slice-level rows found: 240 rows for 80 patients" in w for w in result["warnings"])
    single = json.loads(_run(capsys, ["audit", str(_write(tmp_path / "one.csv", rows)), "--json"])[1])
    assert result["auc"] == pytest.approx(single["auc"])  # the mean of a patient's slices keeps its rank


def test_folds_are_pooled_out_of_fold(tmp_path, capsys):
    rows = _predictions(5, 0.8, runs=1, n_per_class=60)
    for i, row in enumerate(rows):
        row["fold"] = i % 5
    path = _write(tmp_path / "cv.csv", rows)
    _, out, _ = _run(capsys, ["audit", str(path), "--id-col", "id", "--fold-col", "fold", "--json"])
    result = json.loads(out)
    assert result["design"] == "out-of-fold" and result["runs"][0]["folds"] == 5
    assert result["runs"][0]["n"] == 120 and "pooled over the folds" in result["pooling"]
    leaked = [{**rows[0], "fold": 3}] + rows
    _, out, _ = _run(capsys, ["audit", str(_write(tmp_path / "leak.csv", leaked)), "--id-col", "id",
                              "--fold-col", "fold", "--json"])
    assert json.loads(out)["leakage"]["n_leaked"] == 1


def test_the_margin_decides_between_no_signal_and_inconclusive(tmp_path, capsys):
    path = _write(tmp_path / "null.csv", _predictions(6, 0.0, runs=1, n_per_class=300))
    _, out, _ = _run(capsys, ["audit", str(path), "--json"])
    assert json.loads(out)["verdict"] == "no_signal"
    _, out, _ = _run(capsys, ["audit", str(path), "--json", "--margin", "0.52"])
    assert json.loads(out)["verdict"] == "inconclusive" and json.loads(out)["margin"] == 0.52


def test_audit_table_shows_the_same_numbers_as_the_verdict(tmp_path, capsys):
    path = _write(tmp_path / "p.csv", _predictions(3, 1.0, runs=2))
    code, out, _ = _run(capsys, ["audit", str(path), "--run-col", "run", "--id-col", "id"])
    assert code == 0
    _, js, _ = _run(capsys, ["audit", str(path), "--run-col", "run", "--id-col", "id", "--json"])
    result = json.loads(js)
    assert "verdict: " + result["verdict"] in out and result["bound_words"] in out
    for run in result["runs"]:
        assert f"{run['auc']:.3f}" in out and f"{run['dip_p']:.2f}" in out
    dips = result["evidence"]["bimodality"]["dip_p"]
    assert [r["dip_p"] for r in result["runs"]] == dips
    assert f"dip p per run from {min(dips):.2g} to {max(dips):.2g}" in out


def test_audit_errors_name_the_file_and_fix(tmp_path, capsys):
    path = _write(tmp_path / "p.csv", _predictions(4, 0.0, runs=1))
    code, _, err = _run(capsys, ["audit", str(path), "--prob-col", "score"])
    assert code == 2 and "no column 'score'" in err and "(option --prob-col)" in err and "p.csv" in err
    rows = _predictions(4, 0.0, runs=1)
    rows[0]["label"] = 2
    bad = _write(tmp_path / "bad.csv", rows)
    code, _, err = _run(capsys, ["audit", str(bad)])
    assert code == 2 and "must hold 0 and 1" in err and "bad.csv" in err and "--label-col" in err
    code, _, err = _run(capsys, ["audit", str(tmp_path / "missing.csv")])
    assert code == 2 and "no predictions file" in err


def test_audit_reads_an_excel_csv_with_bom_and_crlf(tmp_path, capsys):
    rows = _predictions(7, 1.0, runs=1)
    text = "id,label,prob\r\n" + "".join(f"{r['id']},{r['label']},{r['prob']}\r\n" for r in rows)
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, out, _ = _run(capsys, ["audit", str(path), "--id-col", "id", "--json"])
    assert code == 0 and json.loads(out)["runs"][0]["n"] == 80


def test_audit_predictions_accepts_a_mapping_of_columns():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    result = audit_predictions({"label": y, "prob": rng.random(60)})
    assert result.runs[0].n == 60 and result.pooling.startswith("one run")
    table = {"label": [1, 0, 0, 1], "prob": [0.1, 0.2, 0.3, 0.4], "id": ["a", "a", "b", "c"]}
    with pytest.raises(AnalysisInputError, match="both labels"):
        audit_predictions(table, id_col="id")


def test_eval_split_on_the_command_line_judges_that_split_alone(tmp_path, capsys):
    """Validation rows separate perfectly (the search tuned on them), test rows on other patients sit
    at AUC 0.5: --eval-split test gives no_signal on the 300 test patients, --eval-split val signal."""
    from exact_scores import exact_auc_scores

    rows = []
    for split, auc, n, first in (("val", 1.0, 60, 1000), ("test", 0.5, 150, 0)):
        y, s = exact_auc_scores(auc, n, n)
        rows += [{"id": f"{first + i:05d}", "label": int(lab), "prob": float(p), "split": split}
                 for i, (lab, p) in enumerate(zip(y, s))]
    path = _write(tmp_path / "pred.csv", rows)
    argv = ["audit", str(path), "--id-col", "id", "--split-col", "split", "--json"]
    test = json.loads(_run(capsys, [*argv, "--eval-split", "test"])[1])
    assert (test["verdict"], test["eval_split"]) == ("no_signal", "test")
    assert test["auc"] == pytest.approx(0.5, abs=1e-3) and test["runs"][0]["n"] == 300
    val = json.loads(_run(capsys, [*argv, "--eval-split", "val"])[1])
    assert (val["verdict"], val["auc"], val["runs"][0]["n"]) == ("signal", 1.0, 120)


def test_slice_rows_without_the_patient_column_are_refused_not_counted_as_patients(tmp_path, capsys):
    """Found by a newcomer: 5 rows per patient for 40 patients, audited without --id-col, were judged
    as 200 patients (AUC 0.657, p 6.5e-05, signal) with no warning; with --id-col id: 40 patients."""
    rng = np.random.default_rng(0)
    rows = [{"id": f"{p:05d}", "label": p % 2, "prob": float(rng.random() + 0.3 * (p % 2))}
            for p in range(40) for _ in range(5)]
    path = _write(tmp_path / "slices.csv", rows)
    code, _, err = _run(capsys, ["audit", str(path)])
    assert code == 2 and "column 'id' repeats within a run (200 rows for 40 values)" in err
    assert "--id-col id" in err
    code, out, _ = _run(capsys, ["audit", str(path), "--id-col", "id", "--json"])
    assert code == 0 and json.loads(out)["runs"][0]["n_pos"] + json.loads(out)["runs"][0]["n_neg"] == 40
    one_row_each = _write(tmp_path / "patients.csv", rows[::5])  # one row per patient: no reason to refuse
    assert _run(capsys, ["audit", str(one_row_each)])[0] == 0


def test_a_header_only_file_says_it_has_no_rows(tmp_path, capsys):
    """Found by a newcomer: a header-only CSV gave "no run can give an AUC ()"."""
    path = tmp_path / "header.csv"
    path.write_text("id,label,prob\n")
    code, _, err = _run(capsys, ["audit", str(path), "--id-col", "id"])
    assert code == 2 and "has a header but no rows" in err and "()" not in err
