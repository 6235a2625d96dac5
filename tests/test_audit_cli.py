"""``mgmt-audit audit`` and ``mgmt-audit audit-claim`` through the CLI."""

import csv
import json

import numpy as np
import pytest

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
    keys = {"auc", "ci_low", "ci_high", "p_value", "p_value_selection_adjusted",
            "expected_best_null_auc", "verdict", "explanation"}
    assert keys <= set(result)
    assert 0.57 < result["expected_best_null_auc"] < 0.61
    assert result["p_value_selection_adjusted"] > 0.3
    assert result["ci_low"] < 0.5 < result["ci_high"]
    assert result["verdict"] != "signal"
    assert "best of 10" in result["explanation"] and "0.583" in result["explanation"]


def test_audit_claim_text_and_a_strong_claim(capsys):
    code, out, _ = _run(capsys, ["audit-claim", "--auc", "0.9", "--n-pos", "60", "--n-neg", "60"])
    assert code == 0 and "verdict                       signal" in out
    code, _, err = _run(capsys, ["audit-claim", "--auc", "1.3", "--n-pos", "6", "--n-neg", "6"])
    assert code == 2 and "AUC lies in [0, 1]" in err


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
    leaked = result["leakage"]["leaked"][0]
    assert leaked == {"run": "all", "id": "10003", "splits": ["train", "val"]}
    assert any("leak" in w for w in result["warnings"])
    assert json.loads((tmp_path / "out" / "audit.json").read_text()) == result
    code, out, _ = _run(capsys, ["audit", str(path), "--id-col", "id", "--split-col", "split"])
    assert "LEAK run all patient 10003: train, val" in out


def test_audit_finds_a_strong_signal_and_not_a_random_one(tmp_path, capsys):
    strong = _write(tmp_path / "strong.csv", _predictions(1, 2.0))
    random = _write(tmp_path / "random.csv", _predictions(2, 0.0))
    argv = ["--run-col", "run", "--id-col", "id", "--trials-tried", "20", "--json"]
    _, out, _ = _run(capsys, ["audit", str(strong), *argv])
    result = json.loads(out)
    assert result["verdict"] == "signal"
    assert len(result["runs"]) == 3 and result["pooled"]["method"].startswith("per-patient mean")
    assert result["pooled"]["n"] == 80
    _, out, _ = _run(capsys, ["audit", str(random), *argv])
    result = json.loads(out)
    assert result["verdict"] != "signal"
    assert result["selection"]["trials"] == 20
    assert result["shape"]["dip_p"] > 0.05


def test_audit_table_output(tmp_path, capsys):
    path = _write(tmp_path / "p.csv", _predictions(3, 1.0, runs=2))
    code, out, _ = _run(capsys, ["audit", str(path), "--run-col", "run", "--id-col", "id"])
    assert code == 0
    assert "pooled" in out and "verdict:" in out and "expected best of 2 null runs" in out


def test_audit_errors_name_the_file_and_fix(tmp_path, capsys):
    path = _write(tmp_path / "p.csv", _predictions(4, 0.0, runs=1))
    code, _, err = _run(capsys, ["audit", str(path), "--prob-col", "score"])
    assert code == 2 and "no column 'score'" in err and "--prob-col" in err and "p.csv" in err
    rows = _predictions(4, 0.0, runs=1)
    rows[0]["label"] = 2
    bad = _write(tmp_path / "bad.csv", rows)
    code, _, err = _run(capsys, ["audit", str(bad)])
    assert code == 2 and "must hold 0 and 1" in err and "bad.csv" in err
    code, _, err = _run(capsys, ["audit", str(tmp_path / "missing.csv")])
    assert code == 2 and "no predictions file" in err


def test_audit_predictions_accepts_a_mapping_of_columns():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(30, int), np.zeros(30, int)]
    result = audit_predictions({"label": y, "prob": rng.random(60)})
    assert result["runs"][0]["n"] == 60 and result["pooled"]["method"] == "single run"
    table = {"label": [1, 0, 0, 1], "prob": [0.1, 0.2, 0.3, 0.4], "id": ["a", "a", "b", "c"]}
    with pytest.raises(AnalysisInputError, match="both labels"):
        audit_predictions(table, id_col="id")
