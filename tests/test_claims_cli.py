"""``mgmt-audit audit-claim`` for accuracy-type claims, and ``--literature``."""

import json

import pytest

from mgmt_audit.analysis.claims import audit_claim
from mgmt_audit.analysis.claims.audit import JUDGED_AUC, JUDGED_IMPLIED
from mgmt_audit.analysis.claims.literature import CLAIMS_DIR, audit_literature, load_claims
from mgmt_audit.cli import main
from mgmt_audit.errors import AnalysisInputError


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_accuracy_can_no_longer_be_mistaken_for_an_auc(capsys):
    # Chang 2018's 83 % accuracy: as an accuracy it is judged on the AUC its operating point implies
    _, out, _ = _run(capsys, ["audit-claim", "--accuracy", "83%", "--n-pos", "40", "--n-neg", "40", "--json"])
    acc = json.loads(out)
    _, out, _ = _run(capsys, ["audit-claim", "--auc", "0.83", "--n-pos", "40", "--n-neg", "40", "--json"])
    auc = json.loads(out)
    assert acc["metric_judged"] == JUDGED_IMPLIED and auc["metric_judged"] == JUDGED_AUC
    assert acc["auc"] is None and auc["auc"] == 0.83
    assert acc["inputs"]["accuracy"]["value"] == 0.83 and "auc" not in acc["inputs"]
    assert acc["ci_low"] < auc["ci_low"]  # an accuracy of 0.83 carries less than an AUC of 0.83
    # the operating point's concave-ROC lower bound is its balanced accuracy: an "AUC" below it is flagged
    _, out, _ = _run(capsys, ["audit-claim", "--auc", "0.83", "--sensitivity", "95%", "--specificity", "95%",
                              "--n-pos", "40", "--n-neg", "40"])
    assert "is the 'AUC' an accuracy?" in out and "metric judged: AUC (as reported)" in out


def test_aliases_percentages_and_fractions_give_one_answer(capsys):
    outs = []
    for argv in (["--recall", "96.31%", "--accuracy", "94.73%", "--specificity", "91.66%"],
                 ["--sensitivity", "0.9631", "--accuracy", "0.9473", "--specificity", "0.9166"]):
        _, out, _ = _run(capsys, ["audit-claim", *argv, "--n", "247", "--average", "binary", "--json"])
        outs.append(json.loads(out))
    for result in outs:
        assert result["consistent"] is True and result["verdict"] == "signal"
        assert "possible only if the printed digits were truncated, not rounded" in result["flags"]
        assert "class split not reported; the counts fit only 163/84 (positive/negative)" in result["flags"]
    assert outs[0]["operating_point"] == outs[1]["operating_point"]


def test_an_impossible_claim_is_inconclusive_and_the_review_says_why(capsys):
    argv = ["audit-claim", "--f1", "96.37%", "--ppv", "97.46%", "--recall", "96.34%", "--n-pos", "125",
            "--n-neg", "31"]
    _, out, _ = _run(capsys, [*argv, "--json"])
    result = json.loads(out)
    assert result["consistent"] is False and result["verdict"] == "inconclusive"
    assert {c["average"] for c in result["consistency"]["checks"]} == {"binary", "binary_other", "micro", "macro",
                                                                       "weighted"}
    _, review, _ = _run(capsys, [*argv, "--format", "review"])
    assert review.startswith("The manuscript reports ") and "F1 96.37%" in review and "cannot all be true" in review
    assert "Please report the confusion matrix" in review


def test_errors_name_the_option(capsys):
    code, _, err = _run(capsys, ["audit-claim", "--accuracy", "83", "--n", "50"])
    assert code == 2 and "83%" in err and "(option --accuracy)" in err
    code, _, err = _run(capsys, ["audit-claim", "--accuracy", "83%", "--n", "50", "--n-pos", "20", "--n-neg", "30"])
    assert code == 2 and "not both" in err and "(option --n)" in err
    code, _, err = _run(capsys, ["audit-claim", "--accuracy", "83%", "--n-pos", "20"])
    assert code == 2 and "(option --n-neg)" in err
    code, _, err = _run(capsys, ["audit-claim", "--n", "50"])
    assert code == 2 and "no metric given" in err
    with pytest.raises(AnalysisInputError, match="binary averaging needs two classes"):
        audit_claim({"accuracy": "0.9"}, n=50, classes=3, average="binary")


def test_a_multiclass_claim_is_tested_against_the_no_information_rate(capsys):
    _, out, _ = _run(capsys, ["audit-claim", "--precision", "0.87", "--recall", "0.87", "--f1", "0.87",
                              "--class-sizes", "66,31,20", "--average", "weighted", "--json"])
    result = json.loads(out)
    assert result["accuracy"]["nir"] == pytest.approx(66 / 117)
    assert result["accuracy"]["correct_low"] <= 102 <= result["accuracy"]["correct_high"]  # 59 + 27 + 16 correct
    assert result["verdict"] == "inconclusive" and "no bound on an AUC" in result["reason"]


@pytest.fixture(scope="module")
def literature():
    return {row.claim.id: row for row in audit_literature(load_claims())}


def test_the_literature_table_holds_every_claim_with_its_source(literature):
    for row in literature.values():
        assert row.claim.quoted_from and row.claim.file and row.result.verdict
    mgmt = [i for i in literature if i.startswith("mgmt_t4_")]
    assert len(mgmt) == 12 and len([i for i in literature if i.startswith("mgmt_t3_")]) == 5
    for key in ("chang2018_mgmt", "yogananda2020_mgmt", "korfiatis2017_mgmt", "han_kamdar2018_mgmt",
                "rsna_miccai2021_best", "zahin2026_simclr_17class", "idh_test_collaborative",
                "fysstk_resnet101_weighted", "liu_1p19q_abstract"):
        assert key in literature
    assert literature["rsna_miccai2021_best"].result.inputs.metrics["auc"].text == "0.62"
    assert literature["chang2018_mgmt"].result.inputs.metrics.keys() == {"accuracy"}


def test_literature_rows_carry_the_known_answers(literature):
    for key in ("liu_1p19q_abstract", "liu_1p19q_table3_codeleted", "liu_1p19q_table3_average"):
        assert literature[key].result.consistent is False
    yoga = literature["yogananda2020_mgmt"]
    assert yoga.result.consistent is True and any("truncated" in f for f in yoga.result.flags)
    assert "n unknown" in literature["chang2018_mgmt"].flags
    assert "image-level evaluation" in literature["zahin2026_simclr_17class"].flags[0]
    assert any("equal by definition" in f for f in literature["zahin2026_simclr_17class"].result.flags)
    assert literature["mgmt_t3_resnet10_model3"].result.verdict == "no_signal"
    assert all("no external test" in row.flags for row in literature.values())


def test_literature_cli_text_and_json(capsys, tmp_path):
    one = tmp_path / "one.toml"
    text = (CLAIMS_DIR / "mgmt_mri_deep_learning.toml").read_text()
    one.write_text(text.split('[[claim]]\nid = "yogananda2020_mgmt"')[0]
                   + "[[claim]]" + text.split("# --- Table 3")[1].split("[[claim]]")[1])
    code, out, _ = _run(capsys, ["audit-claim", "--literature", str(one), "--json"])
    rows = json.loads(out)["claims"]
    assert code == 0 and [r["id"] for r in rows] == ["chang2018_mgmt", "mgmt_t3_resnet10_model1"]
    assert all("verdict" in r and "consistent" in r for r in rows)
    code, out, _ = _run(capsys, ["audit-claim", "--literature", str(one)])
    assert "mgmt_t3_resnet10_model1" in out and "flags: no external test" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[[claim]]\nid = "x"\nstudy = "s"\nmarker = "m"\ncohort = "c"\nquoted_from = "q"\n'
                   'metrics = { accuracy = "0.9" }\nevaluation = "hold-out"\nunit = "patient"\nsize = 3\n')
    code, _, err = _run(capsys, ["audit-claim", "--literature", str(bad)])
    assert code == 2 and "bad.toml" in err and "size" in err and "(option --literature)" in err


def test_a_selection_adjusted_lower_bound_is_labelled_so(capsys):
    # A newcomer read "90% interval (Hanley–McNeil) [0.450, 0.681]" for AUC 0.59 on 61/56 best of 10 trials as
    # the plain interval; the plain Hanley–McNeil interval (over the rounding span) is [0.499, 0.681], 0.450 the Šidák-adjusted bound.
    _, plain, _ = _run(capsys, ["audit-claim", "--auc", "0.59", "--n-pos", "61", "--n-neg", "56"])
    _, best, _ = _run(capsys, ["audit-claim", "--auc", "0.59", "--n-pos", "61", "--n-neg", "56",
                               "--trials-tried", "10"])
    assert "90% interval (Hanley–McNeil)  [0.499, 0.681]" in plain and "Šidák-adjusted" not in plain
    assert "90% interval (Hanley–McNeil, lower bound Šidák-adjusted for 10 trials)  [0.450, 0.681]" in best
    assert "interval (lower bound Šidák-adjusted for 10) [0.450, 0.681]" in best  # the evidence sentence
    assert "[0.450, 0.681] (its lower bound Šidák-adjusted for the best of 10 trials)" in best  # the review


def test_counts_and_bad_numbers_read_as_a_person_would_write_them(capsys):
    """Found by a newcomer: "misses by 1 units", "1 matrices"; --auc 1.5 answered with "or as a fraction
    (0.015)" as if an AUC of 0.015 were meant; --class-sizes 5,5 with --classes 3 accepted silently."""
    from mgmt_audit.words import counted

    assert [counted(1, "matrix"), counted(2, "matrix"), counted(1.0000001, "unit", fmt=".3g"),
            counted(1.5, "digit", fmt=".3g"), counted(1, "patient")] == [
        "1 matrix", "2 matrices", "1 unit", "1.5 digits", "1 patient"]
    assert main(["audit-claim", "--accuracy", "0.8", "--n-pos", "1", "--n-neg", "1"]) == 0
    out = capsys.readouterr().out
    assert "misses by 1 unit of the last printed digit" in out and "1 units" not in out
    assert main(["audit-claim", "--auc", "1.5", "--n-pos", "10", "--n-neg", "10"]) == 2
    assert "if it was printed as a percentage, write its sign (1.5%, i.e. 0.015)" in capsys.readouterr().err
    assert main(["audit-claim", "--auc", "150", "--n-pos", "10", "--n-neg", "10"]) == 2
    assert "cannot exceed 1, nor a percentage 100%" in capsys.readouterr().err
    assert main(["audit-claim", "--accuracy", "0.8", "--class-sizes", "5,5", "--classes", "3"]) == 2
    assert "classes = 3 but 2 class sizes were given" in capsys.readouterr().err
