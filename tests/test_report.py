"""The HTML report on synthetic studies with a known effect: it builds, holds every section with its
figures embedded, fetches nothing, escapes hostile strings, finds the planted signal and not the null."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import optuna
import pytest
from markupsafe import escape
from report_factory import N_VAL, synthetic_run, synthetic_study

from mgmt_audit.cli import main
from mgmt_audit.cli.report import verdict_table
from mgmt_audit.report.build import ReportInput, build_report
from mgmt_audit.report.collect import StudyRuns, TrialRun, config_label
from mgmt_audit.report.figures import new_figure, to_data_uri
from mgmt_audit.report.sections import param_importances

pytestmark = pytest.mark.filterwarnings("error")  # a library warning reaching a report user fails
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
HEADINGS = ("Verdicts", "Predicted probabilities by true label", "Training and validation loss",
            "Layer probes (t-SNE)", "Where the models look (Grad-CAM)", "Planted-signal power curve",
            "Hyperparameters and trials", "Data", "Reproducibility")


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of h2 headings."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_h2 = tag == "h2"
        if self._in_h2:
            self.headings.append("")

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.headings[-1] += data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    null = synthetic_study(root / "runs", "demo-null", "null", 0.0, strength=0.0)
    for trial in null.trials:  # a hostile configuration name must be shown as text
        trial.config = trial.config.replace("toy-a", HOSTILE)
    studies = [null,
               synthetic_study(root / "runs", "demo-mid", "medium", 1.2, strength=0.5),
               synthetic_study(root / "runs", "demo-signal", "signal", 3.0, strength=1.0)]
    report = ReportInput(title=f"demo {HOSTILE}", description=f"spec description {HOSTILE}",
                         studies=studies, facts={"profile": "smoke"})
    html_path = build_report(report, root / "out")
    html = html_path.read_text()
    parser = Elements()
    parser.feed(html)
    summary = json.loads((root / "out" / "summary.json").read_text())
    return html, parser, summary


def test_every_section_is_present_in_order(built):
    _, parser, _ = built
    assert [re.sub(r"^\d+\. ", "", h) for h in parser.headings] == list(HEADINGS)


def test_figures_are_embedded_pngs(built):
    _, parser, _ = built
    images = [attrs["src"] for tag, attrs in parser.tags if tag == "img"]
    # the AUC centrepiece, one probability grid, one loss grid, the power curve, importance per study
    assert len(images) == 1 + 1 + 1 + 1 + 3
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_nothing_is_fetched_from_outside(built):
    html, parser, _ = built
    for _, attrs in parser.tags:
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), value
    assert "@import" not in html and "url(" not in html


def test_hostile_strings_are_escaped(built):
    html, parser, _ = built
    assert [tag for tag, _ in parser.tags if tag in ("script", "iframe", "object", "embed")] == []
    assert not any(name.startswith("on") for _, attrs in parser.tags for name in attrs)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert HOSTILE not in html


def test_planted_signal_is_found_and_null_is_not(built):
    _, _, summary = built
    assert summary["margin"] == 0.65
    assert summary["verdicts"] == {"null": "no_signal", "medium": "signal", "signal": "signal"}
    rows = {(r["cohort"], r["configuration"]): r for r in summary["configurations"]}
    assert rows[("signal", "toy-b")]["auc"] > 0.95 and rows[("signal", "toy-b")]["design"] == "held-out test"
    assert abs(rows[("null", "toy-b")]["auc"] - 0.5) < 0.1
    assert rows[("null", HOSTILE)]["verdict"] == "no_signal"
    cohorts = {c["cohort"]: c for c in summary["cohorts"]}
    assert cohorts["null"]["status"] == "right" and cohorts["medium"]["status"] == "right"
    assert sum(r["selected"] for r in summary["configurations"] if r["cohort"] == "null") == 1


def test_the_first_screen_states_the_margin_and_every_cohort_verdict(built):
    html, _, summary = built
    assert "At margin AUC 0.65" in html
    assert "null: no_signal; medium: signal; signal: signal" in html
    assert (html.index("By cohort") < html.index("<img") < html.index("By configuration")
            < html.index('<section id="probabilities">'))
    assert 'class="verdict-right">no_signal<' in html


def test_verdict_colours_say_right_wrong_and_neutral(tmp_path):
    studies = [synthetic_study(tmp_path / "runs", "missed", "missed", 0.0, strength=0.5),  # planted, no_signal
               synthetic_study(tmp_path / "runs", "found", "found", 3.0, strength=1.0),
               synthetic_study(tmp_path / "runs", "real", "real", 0.0)]  # no expectation
    html = build_report(ReportInput("c", "", studies), tmp_path / "out").read_text()
    first = html[html.index("By cohort"):html.index("<img")]
    assert '<td class="verdict-wrong">no_signal</td>' in first
    assert '<td class="verdict-right">signal</td>' in first
    assert '<td class="verdict-neutral">no_signal</td>' in first


def test_evidence_is_folded_and_stated_once_per_configuration(built):
    html, _, summary = built
    folded = html[html.index("<details>"):html.index("</details>")]
    assert "Evidence per configuration (6)" in folded
    for row in summary["configurations"]:
        reason, alike = str(escape(row["reason"])), [r["reason"] for r in summary["configurations"]]
        assert html.count(reason) == folded.count(reason) == alike.count(row["reason"])
    assert "mean AUC of 3 runs" not in html  # the sentence pattern is not repeated per configuration
    assert html.count("permutation of the evaluation labels across all runs at once") == 1


def test_a_permutation_p_needs_enough_null_runs(tmp_path):
    few = synthetic_study(tmp_path / "runs", "few", "few", 3.0, configs=("toy",), null_trials=1)
    enough = synthetic_study(tmp_path / "runs", "enough", "enough", 3.0, configs=("toy",), null_trials=19)
    html = build_report(ReportInput("p", "", [few, enough]), tmp_path / "out").read_text()
    assert "<td>1 run: too few for a p (needs 19 null trials, so that its smallest p" in html
    assert "<td>p = 0.050 (19 runs)</td>" in html
    assert "0.500" not in html.replace("0.5000", "")  # never a bare p from one null run


def test_header_states_what_was_run(tmp_path):
    study = synthetic_study(tmp_path / "runs", "s", "s", 0.0, configs=("toy",), seeds=2, null_trials=1)
    study.attrs = {"profile": "smoke", "spec_hash": "abc123",
                   "spec": {"data": {"preprocess": {"size": 32, "depth": 16}}, "model": {"preset": "smoke"}}}
    html = build_report(ReportInput("s", "the spec says 256 x 256", [study]), tmp_path / "out").read_text()
    header = html[:html.index("<nav>")]
    assert ("s (cohort s): profile smoke; toy (preset smoke) on 32 × 32 × 16 FLAIR (slices); adam, 6 epochs, "
            "batch 8; seeds 0, 1; 3 trials (1 label-permutation null); 60 train / 60 validation / 200 held-out "
            "test patients") in header
    assert "abc123" in html[html.index('<section id="reproducibility">'):]


def test_digits_are_not_listed_as_an_mri_modality(tmp_path):
    from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord

    series = {"FLAIR": SeriesRecord("FLAIR", True, "ok", plane="axial")}
    patients = [PatientRecord(f"{i:05d}", i % 2, "ok", series=series) for i in range(4)]
    digits = Manifest("digits", "digits", ["FLAIR"], {"size": 32, "depth": 8}, "h", 0, patients)
    study = synthetic_study(tmp_path / "runs", "d", "digits", 3.0, configs=("toy",), null_trials=0)
    html = build_report(ReportInput("d", "", [study], manifests={"digits": digits}), tmp_path / "out").read_text()
    data = html[html.index('<section id="data">'):html.index('<section id="reproducibility">')]
    assert "MNIST digit images: 4 ok" in data and "FLAIR" not in data and "axial" not in data


def test_report_margin_changes_the_verdict_and_validation_only_runs_say_so(tmp_path):
    study = synthetic_study(tmp_path / "runs", "s", "s", 0.0, configs=("toy",), seeds=3, null_trials=0)
    strict = build_report(ReportInput("s", "", [study], margin=0.55), tmp_path / "strict")
    assert json.loads(strict.with_name("summary.json").read_text())["verdicts"] == {"s": "inconclusive"}
    trials = []
    for number, seed in enumerate(range(3)):
        result = synthetic_run(seed, 3.0, test=False)
        folder = result.save(tmp_path / "val" / str(number))
        trials.append(TrialRun("v", number, "COMPLETE", {}, seed, False, "toy", result.val_auc, folder))
    out = build_report(ReportInput("v", "", [StudyRuns("v", "v", trials)]), tmp_path / "v")
    row = json.loads(out.with_name("summary.json").read_text())["configurations"][0]
    assert row["design"] == "validation (also used by the search and early stopping)"


def test_empty_sections_say_why(tmp_path):
    study = synthetic_study(tmp_path / "runs", "one", "one", 0.0, configs=("toy",), seeds=2,
                            null_trials=0)
    html = build_report(ReportInput("one", "", [study]), tmp_path / "out").read_text()
    assert "no planted-signal cohorts were run" in html
    assert "no trial saved layer features" in html
    assert "no run scored Grad-CAM maps" in html
    assert "no data manifest was found" in html
    assert "importance needs at least 2" in html


def test_importance_finds_the_parameter_that_matters():
    distributions = {"width": optuna.distributions.IntDistribution(8, 64),
                     "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    rng = np.random.default_rng(0)
    frozen = []
    for _ in range(30):
        params = {"width": int(rng.integers(8, 65)), "lr": float(10 ** rng.uniform(-4, -2))}
        frozen.append(optuna.trial.create_trial(
            value=0.5 + params["width"] / 200, params=params, distributions=distributions))
    study = StudyRuns("s", "c", [], frozen=frozen)
    importances, why_not = param_importances(study)
    assert why_not == ""
    assert importances["width"] > 0.8 > importances["lr"]


def test_a_study_whose_every_run_reaches_auc_1_is_reported_with_importance_undefined(tmp_path):
    """The digits control or a strong planted signal: every seed run separates perfectly, so there is
    no variance for fANOVA to share out (optuna raised 'zero total variance in all trees')."""
    study = synthetic_study(tmp_path / "runs", "perfect", "perfect", 40.0, strength=1.0)
    assert {t.val_auc for t in study.trials if not t.null} == {1.0}
    importances, why_not = param_importances(study)
    assert importances == {} and "validation AUC 1.000" in why_not and "importance undefined" in why_not
    html = build_report(ReportInput("perfect", "", [study]), tmp_path / "out").read_text()
    assert "importance undefined" in html
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [c["verdict"] for c in summary["cohorts"]] == ["signal"]


def test_data_uri_round_trips_a_png():
    figure = new_figure(2, 1)
    figure.add_subplot().plot([0, 1], [0, 1])
    uri = to_data_uri(figure)
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG")


def test_config_label_names_family_and_searched_values():
    assert config_label("cnn2d", {}) == "cnn2d"
    assert config_label("cnn2d", {"lr": 0.000123456, "depth": 3}) == "cnn2d (depth=3, lr=0.000123)"
    assert config_label("cnn2d", {"model": "vit"}) == "vit"


def test_report_study_reads_an_optuna_storage(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'toy.db'}"
    study = optuna.create_study(study_name="toy", storage=storage, direction="maximize")
    study.set_user_attr("spec", {"description": f"toy study {HOSTILE}", "model": {"family": "cnn2d"}})
    study.set_user_attr("profile", "smoke")
    distributions = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    for number, (seed, null, shift) in enumerate([(0, False, 3.0), (1, False, 3.0), (0, True, 0.0)]):
        result = synthetic_run(seed + 10 * number, shift)
        folder = result.save(tmp_path / "runs" / "toy" / str(number))
        study.add_trial(optuna.trial.create_trial(
            value=result.val_auc, params={"lr": 1e-3}, distributions=distributions,
            user_attrs={"seed": seed, "null": null, "val_auc": result.val_auc,
                        "artifacts": str(folder), "config_id": "abc"}))
    assert main(["report", "toy", "--storage", storage, "--runs-dir", str(tmp_path / "runs"),
                 "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    html_path = tmp_path / "out" / "index.html"
    assert printed[-2:] == [f"report: {html_path}", f"summary: {html_path.with_name('summary.json')}"]
    summary = json.loads(html_path.with_name("summary.json").read_text())
    toy = summary["cohorts"][0]
    assert printed[0] == "verdicts at margin 0.65:" and printed[1].split()[:2] == ["cohort", "n"]
    assert printed[2].split()[:2] == ["toy", f"{toy['n_pos']}/{toy['n_neg']}"]
    assert printed[2].split()[5] == "signal" and printed[2].endswith(toy["bound_words"])
    assert summary["verdicts"] == {"toy": "signal"}
    assert summary["configurations"][0]["configuration"] == "cnn2d (lr=0.001)"
    assert summary["studies"][0]["null_trials"] == 1
    assert "toy study &lt;script&gt;" in html_path.read_text()


def test_probes_show_the_layer_that_separates(tmp_path):
    study = synthetic_study(tmp_path / "runs", "probed", "probed", 0.0, configs=("toy",), seeds=1,
                            null_trials=0, probe=True)
    html = build_report(ReportInput("probed", "", [study]), tmp_path / "out").read_text()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    layers = {p["layer"]: p for p in summary["probes"]["probed · toy"]}
    assert layers["deep"]["separability"] > 0.95 and layers["deep"]["linear_auc"] > 0.95
    assert layers["shallow"]["separability"] < 0.75
    assert "t-SNE embedding per probed model and layer" in html and "separability by layer depth" in html
    assert f'<td>probed · C1</td><td class="num">{N_VAL}</td>' in html  # the sample size beside the score


def test_printed_verdicts_agree_with_the_cohort_verdict(tmp_path):
    """A cohort whose first study's answer is inconclusive and second's is signal prints the signal's
    interval and words, never the first answer's."""
    weak = synthetic_study(tmp_path / "runs", "weak", "c", 0.0, configs=("toy",), seeds=2, null_trials=0)
    strong = synthetic_study(tmp_path / "runs", "strong", "c", 3.0, configs=("toy",), seeds=2, null_trials=0)
    out = build_report(ReportInput("two", "", [weak, strong]), tmp_path / "out")
    summary = json.loads(out.with_name("summary.json").read_text())
    cohort = summary["cohorts"][0]
    lead = next(a for a in cohort["answers"] if a["study"] == "strong")
    assert cohort["verdict"] == lead["verdict"] == "signal" and cohort["answers"][0]["study"] == "weak"
    line = verdict_table(summary)[2]
    assert lead["bound_words"] in line and f"{lead['auc']:.3f}" in line


def test_the_recorded_commit_says_when_tracked_files_differ_from_it(tmp_path):
    """Found by a newcomer: a report made from a working tree with an uncommitted spec change recorded
    only HEAD, which does not reproduce it."""
    import subprocess

    from mgmt_audit.report.build import _git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "spec.toml").write_text("patients = 64\n")
    git("add", "spec.toml")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "spec")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert _git_commit(tmp_path) == head
    (tmp_path / "spec.toml").write_text("patients = 128\n")
    assert _git_commit(tmp_path) == f"{head} with uncommitted changes to 1 tracked file"
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    assert _git_commit(tmp_path).endswith("to 1 tracked file")
    assert _git_commit(tmp_path.parent / "nowhere").startswith(("none", "unknown"))
