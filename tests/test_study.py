"""Study runs on SQLite: exact trial counts, seeds and null twins, resume, Ctrl-C, a worker killed
with SIGKILL, two processes sharing a study, a planted signal found (and repeated exactly), the same
proposals from the same command, and SimCLR pretraining on the training patients (once per seed)."""

from __future__ import annotations

import csv
import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cache_factory import write_cache
from study_helpers import assert_exact_and_unique, schedule_only, tiny_cache, trial_key, write_spec

from mgmt_audit.cli import main
from mgmt_audit.errors import ConfigError
from mgmt_audit.study.spec import load_study
from mgmt_audit.models import build
from mgmt_audit.study.runner import RunOptions, load_existing_study, safe_url, sampler_seed
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


def test_schedule_seeds_and_null_twins(tmp_path):
    spec_path = write_spec(tmp_path, "sched", n_trials=7, null_trials=2, seeds=2)
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    assert schedule_only(str(spec_path), url, 7, 0.0) == 7
    study = load_existing_study("sched", url)
    complete = assert_exact_and_unique(study, 7)
    real = [t for t in complete if not t.user_attrs["null"]]
    nulls = [t for t in complete if t.user_attrs["null"]]
    assert len(real) == 5 and len(nulls) == 2
    by_config: dict[str, set[int]] = {}
    for trial in real:
        by_config.setdefault(trial.user_attrs["config_id"], set()).add(trial.user_attrs["seed"])
    assert sorted(map(sorted, by_config.values())) == [[0], [0, 1], [0, 1]]  # last configuration cut to the target
    for null in nulls:  # the permuted twin of a real leader: same configuration and seed
        assert null.user_attrs["seed"] == 0
        assert (null.user_attrs["config_id"], 0, False) in {trial_key(t) for t in real}
    assert len({n.user_attrs["config_id"] for n in nulls}) == 2
    assert study.user_attrs["sampler"] == "random" and study.user_attrs["optuna_version"].startswith("4.")


def test_schedule_best_configuration_over_seeds(tmp_path):
    spec_path = write_spec(tmp_path, "best", n_trials=7, null_trials=1, seeds=3, policy="best")
    url = f"sqlite:///{tmp_path / 'best.db'}"
    schedule_only(str(spec_path), url, 7, 0.0)
    complete = assert_exact_and_unique(load_existing_study("best", url), 7)
    search = [t for t in complete if t.user_attrs["phase"] == "search" and not t.user_attrs["null"]]
    seeded = [t for t in complete if t.user_attrs["phase"] == "seeds"]
    assert len(search) == 4 and {t.user_attrs["seed"] for t in search} == {0}
    best = max(search, key=lambda t: t.value)  # the value is the lr: the best is the largest lr
    assert sorted(t.user_attrs["seed"] for t in seeded) == [1, 2]
    assert all(t.params == best.params for t in seeded)


def test_two_processes_share_one_sqlite_study_exactly(tmp_path):
    spec_path = write_spec(tmp_path, "shared", n_trials=10, null_trials=2, seeds=2)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=schedule_only, args=(str(spec_path), url, 10, 0.2, barrier, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    done = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join()
    assert sum(done) == 10 and min(done) >= 2  # both took part
    assert_exact_and_unique(load_existing_study("shared", url), 10)


def test_smoke_run_resume_status_and_artifacts(tmp_path, cache, capsys):
    spec = write_spec(tmp_path, "tiny", n_trials=4, null_trials=1)
    runs = tmp_path / "runs"
    assert run_cli(spec, runs, cache, "--n-trials", "3") == 0
    out = capsys.readouterr().out
    assert "profile smoke" in out and "device cpu" in out and f"storage {sqlite_url(runs, 'tiny')}" in out
    assert_exact_and_unique(load_existing_study("tiny", sqlite_url(runs, "tiny")), 3)
    assert run_cli(spec, runs, cache) == 0  # continues to the profile's target, 4
    study = load_existing_study("tiny", sqlite_url(runs, "tiny"))
    assert_exact_and_unique(study, 4)
    capsys.readouterr()
    assert main(["study", "status", "tiny", "--runs-dir", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["number"] for r in rows] == list(range(4))
    for row in rows:
        assert set(row) >= {"number", "state", "seed", "params", "val_auc", "null", "artifacts"}
        assert row["state"] == "COMPLETE" and isinstance(row["null"], bool) and 0 <= row["val_auc"] <= 1
        folder = Path(row["artifacts"])
        assert folder == (runs / "tiny" / str(row["number"])).resolve()
        assert all((folder / f).is_file() for f in ("predictions.csv", "curves.json", "meta.json"))
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["seed"] == row["seed"] and meta["labels_permuted"] == row["null"]
    assert sum(r["null"] for r in rows) == 1
    trial = study.trials[0]
    assert {"artifacts", "val_auc", "seed", "null", "config_id"} <= set(trial.user_attrs)
    assert main(["study", "status", "tiny", "--runs-dir", str(runs)]) == 0
    assert "COMPLETE 4" in capsys.readouterr().out


def test_another_spec_for_an_existing_study_is_an_error(tmp_path, cache, capsys):
    spec = write_spec(tmp_path, "drift", n_trials=1, null_trials=0)
    runs = tmp_path / "runs"
    assert run_cli(spec, runs, cache) == 0
    spec.write_text(spec.read_text().replace("lr = 1e-3", "lr = 2e-3"))
    assert run_cli(spec, runs, cache) == 2
    err = capsys.readouterr().err
    assert "was created from a different spec" in err and err.rstrip().endswith("(option --storage)")


def test_data_that_is_neither_cache_nor_cohort_is_an_error(tmp_path, capsys):
    spec = write_spec(tmp_path, "nodata", n_trials=1, null_trials=0)
    (tmp_path / "empty").mkdir()
    assert run_cli(spec, tmp_path / "runs", tmp_path / "empty") == 2
    err = capsys.readouterr().err
    assert f"error: data {tmp_path / 'empty'}: neither an ingested cache (manifest.json)" in err
    assert err.rstrip().endswith("give one of these (option --data)")


def test_ctrl_c_fails_and_requeues_the_running_trial(tmp_path, cache, monkeypatch, capsys):
    import mgmt_audit.train.loop as loop

    spec = write_spec(tmp_path, "intr", n_trials=3, null_trials=1)
    runs = tmp_path / "runs"
    real_fit, calls = loop.fit, []

    def interrupted_fit(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "fit", interrupted_fit)
    assert run_cli(spec, runs, cache) == 130
    assert "interrupted" in capsys.readouterr().err
    study = load_existing_study("intr", sqlite_url(runs, "intr"))
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "WAITING"]
    failed, waiting = study.trials[1], study.trials[2]
    assert waiting.params == failed.params and trial_key(waiting) == trial_key(failed)
    monkeypatch.setattr(loop, "fit", real_fit)
    assert run_cli(spec, runs, cache) == 0
    study = load_existing_study("intr", sqlite_url(runs, "intr"))
    assert_exact_and_unique(study, 3)
    assert study.trials[2].state.name == "COMPLETE"


def test_sigkill_mid_trial_then_run_again(tmp_path, cache):
    spec = write_spec(tmp_path, "killed", n_trials=3, null_trials=1, epochs=15)
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
                    trials = load_existing_study("killed", url).get_trials(deepcopy=False)
                except Exception:  # the worker is still creating the schema
                    continue
                running = [t for t in trials if t.state.name == "RUNNING" and len(t.intermediate_values) >= 2]
                victim = running[0].number if running else None
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert victim is not None, "the worker never got mid-trial"
    study = load_existing_study("killed", url)
    assert study.trials[victim].state.name == "RUNNING"  # left behind by the killed worker
    assert run_cli(spec, runs, cache) == 0
    study = load_existing_study("killed", url)
    complete = assert_exact_and_unique(study, 3)
    assert study.trials[victim].state.name == "FAIL"
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == victim]
    assert len(retried) == 1 and trial_key(retried[0]) == trial_key(study.trials[victim])
    assert not [t for t in study.trials if t.state.name == "RUNNING"]


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
    again = load_existing_study("resnet10_seeds", "sqlite:///runs2/resnet10_seeds.db").trials[0]
    assert again.user_attrs["seed"] == real[0].user_attrs["seed"] and not again.user_attrs["null"]
    assert again.value == real[0].value
    assert read_probs(Path(again.user_attrs["artifacts"])) == read_probs(Path(real[0].user_attrs["artifacts"]))


def test_same_command_proposes_the_same_configurations_and_a_resume_draws_anew(tmp_path, cache):
    spec = write_spec(tmp_path, "repro", n_trials=2, null_trials=0, seeds=1)
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli(spec, first, cache, "--threads", "1") == 0
    subprocess.run([*CLI, "study", "run", str(spec), "--profile", "smoke", "--data", str(cache), "--runs-dir",
                    str(second), "--threads", "1"], check=True, capture_output=True)  # another process
    params = [[t.params for t in load_existing_study("repro", sqlite_url(runs, "repro")).trials]
              for runs in (first, second)]
    assert params[0] == params[1] and params[0][0] != params[0][1]
    assert run_cli(spec, first, cache, "--n-trials", "3", "--threads", "1") == 0  # resumed: not a replay of trial 0
    study = load_existing_study("repro", sqlite_url(first, "repro"))
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
    from mgmt_audit.models import simclr

    data = tmp_path / "cache4"
    write_cache(data, patients=16, shape=(16, 16, 8), modalities=("FLAIR", "T1w", "T1wCE", "T2w"))
    calls = []
    real = simclr.pretrain_simclr
    monkeypatch.setattr(simclr, "pretrain_simclr", lambda *a, **k: calls.append(a[1].shape) or real(*a, **k))
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
    assert calls == [(n_train * 4 * 4, 16, 16)]  # 4 central slices of each of 4 sequences
    assert meta["config"]["model_params"]["encoder_state"] == first["state"]
    assert meta["config"]["view"] == "stack" and meta["config"]["view_params"]["n_slices"] == 8

    state = torch.load(states[0], weights_only=True)
    seed_everything(derived_seed(0, "pretrain"))  # the fresh encoder the pretraining started from
    fresh = build("simclr_resnet18", in_channels=1, spatial_size=(16, 16), widen_factor=0.125).encoder.state_dict()
    assert state.keys() == fresh.keys()
    for name in ("conv1.weight", "layer4.1.conv2.weight"):
        assert not torch.equal(state[name], fresh[name])


def test_pretraining_on_a_cache_without_its_sequences_is_an_error(tmp_path, cache, capsys):
    assert main(["study", "run", "simclr_sweep", "--profile", "smoke", "--data", str(cache),
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert f"cache {cache} has no ['T1w', 'T1wCE', 'T2w'] to pretrain on" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "simclr_sweep.db").exists()  # refused before any trial


def test_run_options_name_the_parameter_and_the_cli_its_flag(tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        RunOptions(storage="sqlite:///x.db", runs_dir=tmp_path, n_trials=2, workers=0)
    assert info.value.parameter == "workers" and str(info.value) == "workers must be at least 1, got 0"
    spec = write_spec(tmp_path, "opts", n_trials=2, null_trials=1, seeds=1)
    assert main(["study", "run", str(spec), "--profile", "smoke", "--phantom", "--runs-dir", str(tmp_path),
                 "--worker-index", "-1"]) == 2
    assert capsys.readouterr().err.rstrip().endswith(
        "error: worker_index must be at least 0, got -1 (option --worker-index)")
