"""Study runs on SQLite: exact trial counts, seeds and null twins, resume, Ctrl-C, a worker killed
with SIGKILL, two processes sharing a study, trials failing for reasons of their own, null trials kept
out of the study's ranking, a planted signal found (and repeated exactly), the same proposals from the
same command, and SimCLR pretraining on the training patients (once per seed).

Tests of scheduling drive the real worker loop (storage, lock, scheduler, Optuna bookkeeping) with
``FakeTrainer``, which scores a trial with its lr instead of training; the others train for real."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score
from cache_factory import write_cache
from study_helpers import FakeTrainer, assert_exact_and_unique, tiny_cache, trial_key, write_spec

from mgmt_audit.cli import main
from mgmt_audit.errors import ConfigError, TrialFailure
from mgmt_audit.models import build
from mgmt_audit.study.sampling import sampler_seed
from mgmt_audit.study.spec import load_study
from mgmt_audit.study.storage import load_existing_study, null_study_name, safe_url
from mgmt_audit.study.worker import RunOptions, StudyFailed, run_study
from mgmt_audit.train.seeding import derived_seed, seed_everything

CLI = [sys.executable, "-c", "import sys; from mgmt_audit.cli import main; sys.exit(main())"]
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tiny_cache(tmp_path_factory.mktemp("tiny") / "cache")


def run_cli(spec: Path, runs: Path, cache: Path, *extra: str) -> int:
    return main(["study", "run", str(spec), "--profile", "smoke", "--data", str(cache),
                 "--runs-dir", str(runs), "--heartbeat", "1", *extra])


def sqlite_url(runs: Path, name: str) -> str:
    return f"sqlite:///{runs / f'{name}.db'}"


def fake_run(spec_path: Path, runs: Path, target: int, trainer: FakeTrainer | None = None, **options) -> dict:
    """The real study run (worker loop, storage, lock, scheduler) with a trainer that does not train."""
    spec = load_study(str(spec_path), "smoke")
    settings = {"heartbeat": 1, "threads": 1, "progress": False, **options}
    return run_study(spec, RunOptions(storage=sqlite_url(runs, spec.name), runs_dir=runs, n_trials=target,
                                      **settings), train=trainer or FakeTrainer(), log=lambda line: None)


def test_schedule_seeds_and_null_twins(tmp_path):
    spec_path = write_spec(tmp_path, "sched", n_trials=7, null_trials=2, seeds=2)
    runs = tmp_path / "runs"
    assert fake_run(spec_path, runs, 7) == {"COMPLETE": 7}
    pair = load_existing_study("sched", sqlite_url(runs, "sched"))
    complete = assert_exact_and_unique(pair, 7)
    real = [t for t in complete if not t.user_attrs["null"]]
    nulls = [t for t in complete if t.user_attrs["null"]]
    assert len(real) == 5 and len(nulls) == 2
    assert [t.user_attrs["null"] for t in pair.nulls.trials] == [True, True]  # the nulls' own study
    by_config: dict[str, set[int]] = {}
    for trial in real:
        by_config.setdefault(trial.user_attrs["config_id"], set()).add(trial.user_attrs["seed"])
    assert sorted(map(sorted, by_config.values())) == [[0], [0, 1], [0, 1]]  # last configuration cut to the target
    for null in nulls:  # the permuted twin of a real leader: same configuration and seed
        assert null.user_attrs["seed"] == 0
        assert (null.user_attrs["config_id"], 0, False) in {trial_key(t) for t in real}
    assert len({n.user_attrs["config_id"] for n in nulls}) == 2
    assert sorted(n.user_attrs["null_index"] for n in nulls) == [0, 1]
    assert pair.user_attrs["sampler"] == "random" and pair.user_attrs["optuna_version"].startswith("4.")
    folders = sorted(Path(t.user_attrs["artifacts"]).name for t in nulls)
    assert folders == [f"null-{t.number}" for t in pair.nulls.trials]


def test_schedule_best_configuration_over_seeds(tmp_path):
    spec_path = write_spec(tmp_path, "best", n_trials=7, null_trials=1, seeds=3, policy="best")
    runs = tmp_path / "runs"
    fake_run(spec_path, runs, 7)
    complete = assert_exact_and_unique(load_existing_study("best", sqlite_url(runs, "best")), 7)
    search = [t for t in complete if t.user_attrs["phase"] == "search" and not t.user_attrs["null"]]
    seeded = [t for t in complete if t.user_attrs["phase"] == "seeds"]
    assert len(search) == 4 and {t.user_attrs["seed"] for t in search} == {0}
    best = max(search, key=lambda t: t.value)  # the value is the lr: the best is the largest lr
    assert sorted(t.user_attrs["seed"] for t in seeded) == [1, 2]
    assert all(t.params == best.params for t in seeded)


@pytest.mark.parametrize("target", [1, 2])
def test_vit_sweep_runs_to_a_target_below_its_seed_count(tmp_path, target):
    """vit_sweep (seeds.policy = "best", 3 seeds) with --n-trials 1 or 2 ended in
    ValueError: max() arg is an empty sequence."""
    runs = tmp_path / "runs"
    assert fake_run(Path("vit_sweep"), runs, target) == {"COMPLETE": target}
    complete = assert_exact_and_unique(load_existing_study("vit_sweep", sqlite_url(runs, "vit_sweep")), target)
    assert sum(t.user_attrs["null"] for t in complete) == target // 2


def test_two_processes_share_one_sqlite_study_exactly(tmp_path):
    spec_path = write_spec(tmp_path, "shared", n_trials=10, null_trials=2, seeds=2)
    runs = tmp_path / "runs"
    assert fake_run(spec_path, runs, 10, FakeTrainer(delay=0.3), workers=2) == {"COMPLETE": 10}
    complete = assert_exact_and_unique(load_existing_study("shared", sqlite_url(runs, "shared")), 10)
    workers = {t.user_attrs["pid"] for t in complete}
    assert len(workers) == 2  # both worker processes ran trials


def test_trials_failing_on_their_own_are_final_and_the_study_reaches_its_target(tmp_path, capsys):
    """lr 50 'diverges': those trials FAIL with the reason, are never run again, count as tried, and the
    study completes its target with the other configurations."""
    from mgmt_audit.report.collect import load_study_runs
    from mgmt_audit.report.sections import importance_section

    spec_path = write_spec(tmp_path, "diverge", n_trials=6, null_trials=2, seeds=2,
                           lr_search='{ type = "categorical", choices = [1e-3, 50.0, 1e-2] }')
    runs = tmp_path / "runs"
    counts = fake_run(spec_path, runs, 6, FakeTrainer(diverge_above=1.0))
    assert counts["COMPLETE"] == 6 and counts["FAIL"] >= 1
    pair = load_existing_study("diverge", sqlite_url(runs, "diverge"))
    assert_exact_and_unique(pair, 6)
    failed = [t for t in pair.trials() if t.state.name == "FAIL" and "duplicate_of" not in t.user_attrs]
    assert {t.params["lr"] for t in failed} == {50.0}
    assert all(t.user_attrs["fail_reason"].startswith("training diverged") for t in failed)
    assert len({trial_key(t) for t in failed}) == len(failed)  # none retried
    assert not [t for t in pair.trials() if t.system_attrs.get("failed_trial") is not None]
    assert all(t.params["lr"] < 1 for t in pair.trials() if t.state.name == "COMPLETE")

    assert main(["study", "status", "diverge", "--runs-dir", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    fail_rows = [r for r in rows if r["state"] == "FAIL" and not r["note"].startswith("re-proposed")]
    assert len(fail_rows) == len(failed)
    assert all(r["note"].startswith("failed: training diverged") and r["artifacts"] is None for r in fail_rows)
    assert main(["study", "status", "diverge", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    tried = len({t.user_attrs["config_id"] for t in pair.trials() if "config_id" in t.user_attrs
                 and not t.user_attrs["null"]})
    assert f"configurations tried: {tried} (failed and pruned included)" in out
    duplicates = sum("duplicate_of" in t.user_attrs for t in pair.trials())
    assert f"failed for reasons of their own: {len(failed)}; re-proposed configurations (never ran): {duplicates}" in out
    assert f"trials: COMPLETE 6, FAIL {len(failed)} (null trials, in diverge.nulls: COMPLETE 2)" in out

    runs_of = load_study_runs("diverge", sqlite_url(runs, "diverge"))
    failed_configs = {t.config for t in runs_of.trials if t.state == "FAIL"}
    assert runs_of.configurations_tried == tried and failed_configs <= {t.config for t in runs_of.trials if not t.null}
    assert any(t.config not in {c.config for c in runs_of.trials if c.state == "COMPLETE"} for t in runs_of.trials
               if t.state == "FAIL")  # a configuration that only failed still counts as tried
    table = importance_section([runs_of]).blocks[-1]
    assert "failed: training diverged" in str(table.__dict__)


def test_a_diverging_learning_rate_fails_its_trials_and_the_study_completes_with_the_others(tmp_path, cache,
                                                                                           capsys):
    """Real training: lr 1e12 gives a non-finite loss in the first epoch. Those trials are FAIL with the
    reason and the run exits 0 with its target reached (it exited 2 at the first one, and every re-run
    picked the same trial up again)."""
    spec = write_spec(tmp_path, "lr_sweep", n_trials=3, null_trials=1, seeds=1,
                      lr_search='{ type = "categorical", choices = [1e12, 1e-3] }')
    runs = tmp_path / "runs"
    assert run_cli(spec, runs, cache, "--threads", "1") == 0
    out = capsys.readouterr().out
    pair = load_existing_study("lr_sweep", sqlite_url(runs, "lr_sweep"))
    complete = assert_exact_and_unique(pair, 3)
    assert {t.params["lr"] for t in complete} == {1e-3}
    failed = [t for t in pair.trials() if "fail_reason" in t.user_attrs]
    assert failed and {t.params["lr"] for t in failed} == {1e12}
    for trial in failed:
        assert trial.state.name == "FAIL"
        assert trial.user_attrs["fail_reason"].startswith("training diverged at epoch 1 (non-finite loss)")
        assert "lower lr (now 1000000000000.0)" in trial.user_attrs["fail_reason"]
        assert "artifacts" not in trial.user_attrs and not (runs / "lr_sweep" / str(trial.number)).exists()
    assert f"trials: COMPLETE 3, FAIL {len(failed)}\n" in out  # re-proposed configurations left out
    assert "training diverged" in out  # the worker says so as it goes on
    assert run_cli(spec, runs, cache, "--threads", "1") == 0  # a re-run has nothing left to do
    assert len(load_existing_study("lr_sweep", sqlite_url(runs, "lr_sweep")).trials()) == len(pair.trials())


def test_a_split_the_configuration_cannot_make_fails_that_trial_and_the_study_goes_on(tmp_path, cache):
    """val_fraction 0.01 of 16 patients is no validation patient at all (it raised and stopped the run)."""
    spec = write_spec(tmp_path, "splits", n_trials=2, null_trials=0, seeds=1, lr_search=(
        '{ type = "categorical", choices = [1e-3] }\nval_fraction = { type = "categorical", choices = [0.01, 0.3] }'))
    runs = tmp_path / "runs"
    assert run_cli(spec, runs, cache, "--threads", "1") == 0
    pair = load_existing_study("splits", sqlite_url(runs, "splits"))
    assert {t.params["val_fraction"] for t in assert_exact_and_unique(pair, 2)} == {0.3}
    failed = [t for t in pair.trials() if "fail_reason" in t.user_attrs]
    assert failed and {t.params["val_fraction"] for t in failed} == {0.01}
    assert all(t.user_attrs["fail_reason"].startswith("degenerate split of 16 patients") for t in failed)


def test_out_of_memory_is_the_trials_own_failure(tmp_path, cache, monkeypatch):
    import mgmt_audit.train.loop as loop
    from mgmt_audit.study.scheduler import Ticket
    from mgmt_audit.study.trial import FitTrainer, TrialTask

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(loop, "fit", exhausted)
    spec = load_study(str(write_spec(tmp_path, "oom", n_trials=2, null_trials=0, seeds=1)), "smoke")
    trainer = FitTrainer(spec, lambda preprocess: cache, tmp_path / "runs")
    task = TrialTask(0, {"lr": 1e-3, "weight_decay": 0.0}, Ticket("c", 0, 0, "search"), tmp_path / "runs" / "oom" / "0")
    with pytest.raises(TrialFailure) as info:
        trainer(task, lambda record: None)
    assert info.value.parameter == "batch_size" and str(info.value) == (
        "out of memory (OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB): lower batch_size "
        "or the model or input size")
    assert not task.folder.exists()


def test_too_many_failures_stop_the_study_with_an_error_naming_the_parameter(tmp_path):
    spec_path = write_spec(tmp_path, "hopeless", n_trials=4, null_trials=1, seeds=2)
    runs = tmp_path / "runs"
    with pytest.raises(StudyFailed) as info:
        fake_run(spec_path, runs, 4, FakeTrainer(diverge_above=0.0), max_failed=3)
    assert info.value.parameter == "max_failed"
    assert "3 trials failed for reasons of their own (max_failed 3), 0 of 4 complete" in str(info.value)
    assert "training diverged" in str(info.value)
    states = [t.state.name for t in load_existing_study("hopeless", sqlite_url(runs, "hopeless")).trials()]
    assert states.count("FAIL") == 3 and "COMPLETE" not in states


def test_a_study_whose_every_configuration_diverges_stops_at_max_failed(tmp_path, cache, capsys):
    spec = write_spec(tmp_path, "all_diverge", n_trials=3, null_trials=1, seeds=1,
                      lr_search='{ type = "categorical", choices = [1e12] }')
    assert run_cli(spec, tmp_path / "runs", cache, "--threads", "1", "--max-failed", "2") == 2
    err = capsys.readouterr().err
    assert "study all_diverge: 2 trials failed for reasons of their own (max_failed 2), 0 of 3 complete" in err
    assert "training diverged" in err and err.rstrip().endswith("allow more failed trials (option --max-failed)")


def test_null_trials_never_rank_as_the_studys_best_trial(tmp_path, capsys):
    """Nulls score 0.99 here, above every real trial; optuna-dashboard (which reads the storage's
    studies and their best trials) must still show a real trial as the study's best."""
    import optuna

    from mgmt_audit.report.collect import load_study_runs

    spec_path = write_spec(tmp_path, "ranked", n_trials=4, null_trials=2, seeds=1)
    runs = tmp_path / "runs"
    fake_run(spec_path, runs, 4, FakeTrainer(null_value=0.99))
    url = sqlite_url(runs, "ranked")
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(url)}
    assert set(summaries) == {"ranked", null_study_name("ranked")}
    maximise = optuna.study.StudyDirection.MAXIMIZE  # val_auc: the nulls' study has the study's direction
    assert [summaries[n].direction for n in sorted(summaries)] == [maximise, maximise]
    best = summaries["ranked"].best_trial
    assert best.user_attrs["null"] is False and best.value < 0.99
    assert optuna.load_study(study_name="ranked", storage=url).best_trial.user_attrs["null"] is False
    assert [t.user_attrs["null"] for t in optuna.load_study(study_name="ranked", storage=url).trials] == [False] * 2

    runs_of = load_study_runs("ranked", url)  # the report still reads the nulls
    assert sorted(t.null for t in runs_of.trials) == [False, False, True, True]
    assert [t.val_auc for t in runs_of.trials if t.null] == [0.99, 0.99]
    assert main(["study", "status", "ranked", "--runs-dir", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["null"], r["val_auc"] == 0.99) for r in rows] == [(False, False)] * 2 + [(True, True)] * 2


def test_smoke_run_resume_status_and_artifacts(tmp_path, cache, capsys):
    spec = write_spec(tmp_path, "tiny", n_trials=4, null_trials=1)
    runs = tmp_path / "runs"
    assert run_cli(spec, runs, cache, "--n-trials", "3") == 0
    out = capsys.readouterr().out
    assert "profile smoke" in out and "device cpu" in out and f"storage {sqlite_url(runs, 'tiny')}" in out
    assert_exact_and_unique(load_existing_study("tiny", sqlite_url(runs, "tiny")), 3)
    assert run_cli(spec, runs, cache) == 0  # continues to the profile's target, 4
    pair = load_existing_study("tiny", sqlite_url(runs, "tiny"))
    assert_exact_and_unique(pair, 4)
    capsys.readouterr()
    assert main(["study", "status", "tiny", "--runs-dir", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["null"], r["number"]) for r in rows] == [(False, 0), (False, 1), (False, 2), (True, 0)]
    for row in rows:
        assert set(row) >= {"number", "state", "seed", "params", "val_auc", "test_auc", "null", "artifacts", "note"}
        assert row["state"] == "COMPLETE" and isinstance(row["null"], bool) and row["note"] is None
        folder = Path(row["artifacts"])
        with open(folder / "predictions.csv") as handle:  # the AUCs stored are those of the saved predictions
            saved = list(csv.DictReader(handle))
        for split, key in (("val", "val_auc"), ("test", "test_auc")):
            rows_of = [r for r in saved if r["split"] == split]
            assert row[key] == pytest.approx(roc_auc_score([int(r["label"]) for r in rows_of],
                                                           [float(r["prob"]) for r in rows_of]))
        assert folder == (runs / "tiny" / f"{'null-' if row['null'] else ''}{row['number']}").resolve()
        assert all((folder / f).is_file() for f in ("predictions.csv", "curves.json", "meta.json"))
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["seed"] == row["seed"] and meta["labels_permuted"] == row["null"]
    assert sum(r["null"] for r in rows) == 1 and rows[3]["null_index"] == 0
    trial = pair.main.trials[0]
    assert {"artifacts", "val_auc", "test_auc", "seed", "null", "config_id"} <= set(trial.user_attrs)
    assert main(["study", "status", "tiny", "--runs-dir", str(runs)]) == 0
    assert "COMPLETE 4" in capsys.readouterr().out


def test_another_spec_for_an_existing_study_is_an_error(tmp_path, cache, capsys):
    spec = write_spec(tmp_path, "drift", n_trials=1, null_trials=0)
    runs = tmp_path / "runs"
    assert run_cli(spec, runs, cache) == 0
    spec.write_text(spec.read_text().replace("lr = 1e-3", "lr = 2e-3"))
    assert run_cli(spec, runs, cache) == 2
    assert "was created from a different spec" in capsys.readouterr().err


def test_data_that_is_neither_cache_nor_cohort_is_an_error(tmp_path, capsys):
    spec = write_spec(tmp_path, "nodata", n_trials=1, null_trials=0)
    (tmp_path / "empty").mkdir()
    assert run_cli(spec, tmp_path / "runs", tmp_path / "empty") == 2
    err = capsys.readouterr().err
    assert f"error: data {tmp_path / 'empty'}: neither an ingested cache (manifest.json)" in err
    assert err.rstrip().endswith("give one of these (option --data)")


def test_ctrl_c_fails_and_requeues_the_running_trial(tmp_path, cache, monkeypatch, capsys):
    """Ctrl-C during the second fit (the null twin of trial 0): the interrupted trial is FAIL with no
    AUC and no run folder (it borrowed its twin's before), and the retry that completes it carries
    nothing of the interruption (it showed '# KeyboardInterrupt:' before)."""
    import mgmt_audit.train.loop as loop

    spec = write_spec(tmp_path, "intr", n_trials=3, null_trials=1, seeds=1)
    runs = tmp_path / "runs"
    real_fit, calls = loop.fit, []

    def interrupted_fit(*args, **kwargs):
        calls.append(kwargs.get("null_index"))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "fit", interrupted_fit)
    assert run_cli(spec, runs, cache) == 130
    assert "interrupted" in capsys.readouterr().err
    assert calls == [None, 0]
    pair = load_existing_study("intr", sqlite_url(runs, "intr"))
    assert [t.state.name for t in pair.main.trials] == ["COMPLETE"]
    assert [t.state.name for t in pair.nulls.trials] == ["FAIL", "WAITING"]
    failed, waiting = pair.nulls.trials
    assert waiting.params == failed.params and trial_key(waiting) == trial_key(failed)
    assert set(waiting.user_attrs) == {"config_id", "seed", "seed_index", "phase", "null", "null_index"}
    monkeypatch.setattr(loop, "fit", real_fit)
    assert run_cli(spec, runs, cache) == 0
    pair = load_existing_study("intr", sqlite_url(runs, "intr"))
    assert_exact_and_unique(pair, 3)
    assert pair.nulls.trials[1].state.name == "COMPLETE"
    capsys.readouterr()
    assert main(["study", "status", "intr", "--runs-dir", str(runs), "--json"]) == 0
    rows = {(r["null"], r["number"]): r for r in json.loads(capsys.readouterr().out)}
    interrupted, retry = rows[(True, 0)], rows[(True, 1)]
    assert interrupted["state"] == "FAIL" and interrupted["val_auc"] is None and interrupted["artifacts"] is None
    assert interrupted["note"] == "interrupted (KeyboardInterrupt: ); retried as trial 1"
    assert retry["state"] == "COMPLETE" and retry["note"] == "retry of trial 0"
    assert Path(retry["artifacts"]).is_dir()


def test_sigkill_mid_trial_then_run_again(tmp_path, cache):
    spec = write_spec(tmp_path, "killed", n_trials=3, null_trials=1, epochs=15, seeds=1)  # 2 leaders report
    runs = tmp_path / "runs"
    url = sqlite_url(runs, "killed")
    command = [*CLI, "study", "run", str(spec), "--profile", "smoke",
               "--data", str(cache), "--runs-dir", str(runs), "--heartbeat", "1", "--threads", "1"]
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    victim = None
    deadline = time.monotonic() + 120
    try:
        while victim is None and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
            if (runs / "killed.db").is_file():
                try:
                    trials = load_existing_study("killed", url).main.get_trials(deepcopy=False)
                except Exception:  # the worker is still creating the schema
                    continue
                running = [t for t in trials if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2]
                victim = running[0].number if running else None
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert victim is not None, "the worker never got mid-trial"
    study = load_existing_study("killed", url).main
    assert study.trials[victim].state.name == "RUNNING"  # left behind by the killed worker
    assert run_cli(spec, runs, cache) == 0
    pair = load_existing_study("killed", url)
    complete = assert_exact_and_unique(pair, 3)
    assert pair.main.trials[victim].state.name == "FAIL"
    retried = [t for t in pair.main.trials if t.system_attrs.get("failed_trial") == victim]
    assert len(retried) == 1 and retried[0] in complete and trial_key(retried[0]) == trial_key(pair.main.trials[victim])
    assert not [t for t in pair.trials() if t.state.name == "RUNNING"]


def read_probs(folder: Path) -> list[tuple[str, float]]:
    with open(folder / "predictions.csv") as handle:
        return [(row["id"], float(row["prob"])) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_planted_signal_found_and_repeated_exactly(tmp_path, monkeypatch):
    """resnet10_seeds --profile smoke on a strong phantom (S = 1): the real trial reaches validation
    AUC >= 0.8; the same seed in a second storage gives the same predictions."""
    monkeypatch.chdir(tmp_path)
    spec = load_study("resnet10_seeds", "smoke")
    assert main(["study", "run", "resnet10_seeds", "--profile", "smoke", "--phantom", "1",
                 "--n-trials", "2", "--runs-dir", "runs"]) == 0
    study = load_existing_study("resnet10_seeds", "sqlite:///runs/resnet10_seeds.db")
    complete = assert_exact_and_unique(study, 2)
    real = [t for t in complete if not t.user_attrs["null"]]
    assert len(real) == 1 and real[0].user_attrs["seed"] == spec.seeds[0]
    assert real[0].value >= 0.8
    caches = list(Path("runs/resnet10_seeds/phantom-S1/cache").glob("*/manifest.json"))
    assert len(caches) == 1
    assert main(["study", "run", "resnet10_seeds", "--profile", "smoke", "--data", str(caches[0].parent),
                 "--n-trials", "1", "--runs-dir", "runs2"]) == 0
    again = load_existing_study("resnet10_seeds", "sqlite:///runs2/resnet10_seeds.db").main.trials[0]
    assert again.user_attrs["seed"] == real[0].user_attrs["seed"] and not again.user_attrs["null"]
    assert again.value == real[0].value
    assert read_probs(Path(again.user_attrs["artifacts"])) == read_probs(Path(real[0].user_attrs["artifacts"]))


def test_same_command_proposes_the_same_configurations_and_a_resume_draws_anew(tmp_path, cache):
    spec = write_spec(tmp_path, "repro", n_trials=2, null_trials=0, seeds=1)
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli(spec, first, cache, "--threads", "1") == 0
    subprocess.run([*CLI, "study", "run", str(spec), "--profile", "smoke", "--data", str(cache), "--runs-dir",
                    str(second), "--threads", "1"], check=True, capture_output=True)  # another process
    params = [[t.params for t in load_existing_study("repro", sqlite_url(runs, "repro")).main.trials]
              for runs in (first, second)]
    assert params[0] == params[1] and params[0][0] != params[0][1]
    assert run_cli(spec, first, cache, "--n-trials", "3", "--threads", "1") == 0  # resumed: not a replay of trial 0
    study = load_existing_study("repro", sqlite_url(first, "repro")).main
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3  # no re-proposed duplicate
    assert study.trials[2].params["lr"] not in {p["lr"] for p in params[0]}


def test_sampler_seed_is_deterministic_and_distinct_per_worker_and_resume():
    seeds = {(w, n): sampler_seed(0, w, n) for w in range(4) for n in (0, 1, 5)}
    assert len(set(seeds.values())) == len(seeds)
    assert sampler_seed(0, 2, 5) == seeds[(2, 5)] != sampler_seed(1, 2, 5)


def test_safe_url_hides_the_password_only():
    assert safe_url("postgresql://audit:s3cret@db.example:5432/mgmt") == "postgresql://audit:***@db.example:5432/mgmt"
    assert safe_url("postgresql://audit@db/mgmt") == "postgresql://audit@db/mgmt"
    assert safe_url("sqlite:///runs/x.db") == "sqlite:///runs/x.db"


def test_simclr_sweep_pretrains_on_training_patients_once_per_seed(tmp_path, monkeypatch):
    """The shipped simclr_sweep (smoke) on a 4-sequence cache: trial 0 pretrains an encoder on the
    training patients only and finetunes from it; its null twin (same seed) reuses the state."""
    from mgmt_audit.models import ssl

    data = tmp_path / "cache4"  # preprocessed as the smoke profile asks (32 x 32 x 8)
    write_cache(data, patients=16, shape=(32, 32, 8), modalities=("FLAIR", "T1w", "T1wCE", "T2w"))
    calls = []
    real = ssl.pretrain_ssl
    monkeypatch.setattr(ssl, "pretrain_ssl", lambda *a, **k: calls.append((a[0], a[2].shape)) or real(*a, **k))
    runs = tmp_path / "runs"
    assert main(["study", "run", "simclr_sweep", "--profile", "smoke", "--data", str(data), "--runs-dir",
                 str(runs), "--n-trials", "2", "--heartbeat", "1", "--threads", "1"]) == 0
    study = load_existing_study("simclr_sweep", sqlite_url(runs, "simclr_sweep"))
    real_trial, null_trial = assert_exact_and_unique(study, 2)
    assert not real_trial.user_attrs["null"] and null_trial.user_attrs["null"]
    first, again = real_trial.user_attrs["pretrain"], null_trial.user_attrs["pretrain"]
    assert (first["reused"], again["reused"]) == (False, True) and first["state"] == again["state"]
    assert first["settings"] == load_study("simclr_sweep", "smoke").pretrain and first["seed"] == 0
    states = list((runs / "simclr_sweep" / "pretrain").glob("*.pt"))
    assert states == [Path(first["state"])] and len(calls) == 1

    meta = json.loads((Path(real_trial.user_attrs["artifacts"]) / "meta.json").read_text())
    record = json.loads(states[0].with_suffix(".json").read_text())
    assert record["patients"] == sorted(meta["split"]["train"])  # never a validation patient
    assert not set(record["patients"]) & set(meta["split"]["val"])
    n_train = len(meta["split"]["train"])
    assert record["volumes"] == dict.fromkeys(("FLAIR", "T1w", "T1wCE", "T2w"), n_train)
    assert calls == [("simclr", (n_train * 4 * 4, 32, 32))]  # 4 central slices of each of 4 sequences
    assert meta["config"]["model_params"]["init"] == first["state"]
    assert meta["config"]["view"] == "stack" and meta["config"]["view_params"]["n_slices"] == 8

    state = torch.load(states[0], weights_only=True)
    seed_everything(derived_seed(0, "pretrain"))  # the fresh encoder the pretraining started from
    fresh = build("simclr_resnet18", in_channels=1, spatial_size=(32, 32), widen_factor=0.125).encoder.state_dict()
    assert state.keys() == fresh.keys()
    for name in ("conv1.weight", "layer4.1.conv2.weight"):
        assert not torch.equal(state[name], fresh[name])


def test_pretraining_on_a_cache_without_its_sequences_is_an_error(tmp_path, capsys):
    cache = tmp_path / "flair"  # preprocessed as the smoke profile asks, FLAIR only
    write_cache(cache, patients=16, shape=(32, 32, 8), modalities=("FLAIR",))
    assert main(["study", "run", "simclr_sweep", "--profile", "smoke", "--data", str(cache),
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert f"cache {cache} has no ['T1w', 'T1wCE', 'T2w'] to pretrain on" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "simclr_sweep.db").exists()  # refused before any trial


def test_status_and_report_take_the_spec_path_that_study_run_took(tmp_path, capsys):
    """`study status PATH.toml` answered "no study 'PATH.toml'" right after `study run PATH.toml`."""
    spec_path = write_spec(tmp_path, "by_path", n_trials=2, null_trials=1, seeds=1)
    runs = tmp_path / "runs"
    fake_run(spec_path, runs, 2)
    assert main(["study", "status", str(spec_path), "--runs-dir", str(runs)]) == 0
    assert "study by_path profile=smoke" in capsys.readouterr().out
    assert main(["study", "status", str(tmp_path / "missing.toml"), "--runs-dir", str(runs)]) == 2
    assert f"study file {tmp_path / 'missing.toml'} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["study", "status"], ["report"]])
def test_a_mistyped_study_name_leaves_no_database_or_lock_file(tmp_path, capsys, command):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "vit_sweep.db").touch()
    assert main([*command, "vit_swep", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert f"no study 'vit_swep': there is no database {runs / 'vit_swep.db'}" in err
    assert f"(studies with a database in {runs}: vit_sweep)" in err and err.rstrip().endswith("(option --storage)")
    assert sorted(p.name for p in runs.iterdir()) == ["vit_sweep.db"]


def test_run_options_name_the_parameter_and_the_cli_its_flag(tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        RunOptions(storage="sqlite:///x.db", runs_dir=tmp_path, n_trials=2, workers=0)
    assert info.value.parameter == "workers" and str(info.value) == "workers must be at least 1, got 0"
    spec = write_spec(tmp_path, "opts", n_trials=2, null_trials=1, seeds=1)
    assert main(["study", "run", str(spec), "--profile", "smoke", "--phantom", "--runs-dir", str(tmp_path),
                 "--worker-index", "-1"]) == 2
    assert capsys.readouterr().err.rstrip().endswith(
        "error: worker_index must be at least 0, got -1 (option --worker-index)")
