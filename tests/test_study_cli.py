"""``mgmt-audit study run`` options that change what runs, each shown to change it (``--worker-index``,
``--workers``, ``--probe``), the search-space-exhausted stop, and the ``report`` command on a study run
from the command line.

Scheduling tests replace the trainer by ``FakeTrainer`` (scores a trial with its lr) behind the real
command line, worker loop and storage; ``--probe`` and ``report`` train for real on a tiny cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cache_factory import write_cache
from study_helpers import FakeTrainer, assert_exact_and_unique, write_spec

from mgmt_audit.cli import main
from mgmt_audit.study.storage import load_existing_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def study_run(spec: Path, runs: Path, data: Path, *extra: str) -> int:
    return main(["study", "run", str(spec), "--profile", "smoke", "--data", str(data), "--runs-dir", str(runs),
                 "--heartbeat", "1", "--threads", "1", *extra])


def url(runs: Path, name: str) -> str:
    return f"sqlite:///{runs / f'{name}.db'}"


@pytest.fixture
def fake_trainer(monkeypatch):
    """``study run`` trains with a FakeTrainer (``delay`` seconds a trial) instead of fitting models."""
    import mgmt_audit.study.worker as worker

    def use(delay: float = 0.0) -> None:
        monkeypatch.setattr(worker, "fit_trainer", lambda spec, options, **kwargs: FakeTrainer(delay=delay))

    use()
    return use


def proposed_lrs(runs: Path, name: str) -> list[float]:
    return [t.params["lr"] for t in load_existing_study(name, url(runs, name)).main.trials
            if t.user_attrs.get("seed_index") == 0]


def test_worker_index_seeds_the_sampler_and_the_same_command_repeats_its_proposals(tmp_path, fake_trainer):
    spec = write_spec(tmp_path, "indexed", n_trials=4, null_trials=0, seeds=1)
    for runs, extra in (("a", ()), ("b", ()), ("c", ("--worker-index", "4"))):
        assert study_run(spec, tmp_path / runs, tmp_path, *extra) == 0
    a, b, c = (proposed_lrs(tmp_path / runs, "indexed") for runs in "abc")
    assert len(a) == 4 and a == b  # one command, one set of proposals
    assert not set(a) & set(c)  # another worker index draws other configurations


def test_workers_two_on_the_command_line_runs_two_processes_to_the_exact_target(tmp_path, fake_trainer, capsys):
    fake_trainer(delay=0.3)
    spec = write_spec(tmp_path, "pair", n_trials=6, null_trials=2, seeds=1)
    assert study_run(spec, tmp_path / "runs", tmp_path, "--workers", "2") == 0
    assert "workers 2" in capsys.readouterr().out
    complete = assert_exact_and_unique(load_existing_study("pair", url(tmp_path / "runs", "pair")), 6)
    assert len({t.user_attrs["pid"] for t in complete}) == 2


def test_an_exhausted_search_space_stops_the_study_short_of_its_target_saying_why(tmp_path, fake_trainer, capsys):
    # one lr times two weight decays, one seed: 2 configurations, however many trials are asked for
    spec = write_spec(tmp_path, "small", n_trials=5, null_trials=0, seeds=1,
                      lr_search='{ type = "categorical", choices = [1e-3] }')
    assert study_run(spec, tmp_path / "runs", tmp_path) == 0
    out = capsys.readouterr().out
    assert "search space is exhausted; lower n_trials or widen the search space" in out
    assert out.rstrip().endswith("trials: COMPLETE 2")
    pair = load_existing_study("small", url(tmp_path / "runs", "small"))
    assert sorted(t.params["weight_decay"] for t in assert_exact_and_unique(pair, 2)) == [0.0, 0.01]


def test_probe_saves_layer_features_and_report_reads_the_study_at_the_margin_asked(tmp_path, capsys):
    cache = tmp_path / "cache"  # 40 patients: 8 held out for test, 4 of each class (the verdict needs 2)
    write_cache(cache, patients=40, shape=(16, 16, 8), modalities=("FLAIR",), signal=1.0)
    spec = write_spec(tmp_path, "probed", n_trials=2, null_trials=1, seeds=1)
    runs = tmp_path / "runs"
    assert study_run(spec, runs, cache, "--probe") == 0
    plain_runs = tmp_path / "plain"
    assert study_run(spec, plain_runs, cache) == 0
    probed = [Path(t.user_attrs["artifacts"]) for t in load_existing_study("probed", url(runs, "probed")).trials()]
    plain = [Path(t.user_attrs["artifacts"]) for t in load_existing_study("probed", url(plain_runs, "probed")).trials()]
    assert len(probed) == len(plain) == 2
    for folder in probed:
        validation = (folder / "predictions.csv").read_text().count(",val,")
        with np.load(folder / "features.npz") as features:
            assert len(features.files) >= 2  # one array per probed layer, a row per validation patient
            assert validation > 0 and all(features[k].shape[0] == validation for k in features.files)
    assert not any((folder / "features.npz").exists() for folder in plain)
    capsys.readouterr()

    out = tmp_path / "report"
    assert main(["report", str(spec), "--runs-dir", str(runs), "--out", str(out), "--margin", "0.8"]) == 0
    printed = capsys.readouterr().out.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert printed[0] == "verdicts at margin 0.8:" and summary["margin"] == 0.8
    assert [c["cohort"] for c in summary["cohorts"]] == ["probed"]
    assert printed[-2:] == [f"report: {out / 'index.html'}", f"summary: {out / 'summary.json'}"]
    assert "Layer probes" in (out / "index.html").read_text()
