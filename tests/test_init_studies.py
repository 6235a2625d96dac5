"""The shipped ssl_sweep and transfer_sweep at smoke size: the initialisation as a grid, one SSL state
per (method, seed) pretrained on the training patients only, scratch never pretrained, and the
report's scratch-vs-pretrained table."""

from __future__ import annotations

import json
from pathlib import Path

from cache_factory import write_cache

from mgmt_audit.cli import main
from mgmt_audit.study.storage import load_existing_study


def run_smoke(name: str, cache: Path, runs: Path) -> list:
    assert main(["study", "run", name, "--profile", "smoke", "--data", str(cache), "--runs-dir", str(runs),
                 "--heartbeat", "1", "--threads", "1"]) == 0
    return [t for t in load_existing_study(name, f"sqlite:///{runs / f'{name}.db'}").trials()
            if t.state.name == "COMPLETE"]


def test_ssl_sweep_pretrains_each_method_once_on_training_patients_and_scratch_never(tmp_path):
    cache = tmp_path / "cache"  # preprocessed as the smoke profile asks (32 x 32 x 8)
    write_cache(cache, patients=16, shape=(32, 32, 8), modalities=("FLAIR",))
    trials = run_smoke("ssl_sweep", cache, tmp_path / "runs")
    real = [t for t in trials if not t.user_attrs["null"]]
    assert sorted(t.params["init"] for t in real) == ["byol", "dino", "moco_v3", "scratch"]  # the grid, once each
    assert len(trials) == 5
    for trial in real:
        meta = json.loads((Path(trial.user_attrs["artifacts"]) / "meta.json").read_text())
        if trial.params["init"] == "scratch":
            assert "pretrain" not in trial.user_attrs and "init" not in meta["config"]["model_params"]
            continue
        record = trial.user_attrs["pretrain"]
        assert record["settings"]["method"] == trial.params["init"] and not record["reused"]
        assert meta["config"]["model_params"]["init"] == record["state"]
        pretrained = json.loads(Path(record["state"]).with_suffix(".json").read_text())
        assert pretrained["patients"] == sorted(meta["split"]["train"])  # never a validation or test patient
    assert len(list((tmp_path / "runs" / "ssl_sweep" / "pretrain").glob("*.pt"))) == 3


def test_transfer_sweep_report_sets_scratch_beside_pretrained_per_family(tmp_path, capsys):
    cache = tmp_path / "cache"  # 24 patients: 2 and 3 of each class held out, the fewest an AUC needs
    write_cache(cache, patients=24, shape=(32, 32, 8), modalities=("FLAIR",))
    runs = tmp_path / "runs"
    trials = run_smoke("transfer_sweep", cache, runs)
    assert sorted((t.params["model"], t.params["init"]) for t in trials if not t.user_attrs["null"]) == [
        ("mobilenet_v2_2d", "scratch"), ("mobilenet_v2_2d", "simclr"),
        ("resnet101_2d", "scratch"), ("resnet101_2d", "simclr")]
    out = tmp_path / "report"
    assert main(["report", "transfer_sweep", "--runs-dir", str(runs), "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    table = page[page.index('id="initialisation"'):]
    table = table[:table.index("</table>")]
    assert table.index(">scratch<") < table.index(">simclr<")  # scratch first, then the pretrained column
    for family in ("mobilenet_v2_2d", "resnet101_2d"):
        row = table[table.index(family):]
        row = row[:row.index("</tr>")]
        assert row.count("inconclusive") + row.count("signal") >= 2  # a verdict under each initialisation


def test_a_missing_local_weights_file_is_refused_before_any_trial(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["study", "run", "transfer_sweep", "--profile", "paper", "--phantom", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "model.weights file(s) ['weights/mobilenet_v2-imagenet.pth', 'weights/resnet101-imagenet.pth'] do not exist" in err
    assert "nothing is downloaded" in err and not (runs / "transfer_sweep.db").exists()
