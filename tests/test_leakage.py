"""Slice-level leakage (split_unit = "slice"): the split that leaks, the training that uses it, and on
the S = 0 phantom that the leak inflates the AUC while the patient split finds nothing."""

import json

import pytest
from demo_run import quick_demo

from cache_factory import write_cache
from mgmt_audit.cli import main
from mgmt_audit.data.splits import SLICE, split_samples
from mgmt_audit.errors import ConfigError
from mgmt_audit.models import default_params
from mgmt_audit.train import TrainConfig, fit

SAMPLES = [(f"{p:05d}", z) for p in range(10) for z in range(8)]
SAMPLE_LABELS = [int(pid) % 2 for pid, _ in SAMPLES]
SLICES = {
    "model": "resnet18_2d", "model_params": default_params("resnet18_2d", "smoke"), "view": "slices",
    "modalities": ["FLAIR"], "epochs": 1, "batch_size": 8, "val_fraction": 0.25, "test_fraction": 0.2,
}


def test_slice_split_puts_a_patients_slices_on_every_side_and_is_seeded():
    sides = split_samples(SAMPLES, SAMPLE_LABELS, split_seed=3, val_fraction=0.25, test_fraction=0.2)
    assert sorted(s for side in sides.values() for s in side) == sorted(SAMPLES)  # a partition of the slices
    assert len(sides["val"]) == 20 and len(sides["test"]) == 16
    patients = {side: {pid for pid, _ in chosen} for side, chosen in sides.items()}
    assert len(patients["train"] & patients["val"] & patients["test"]) >= 5  # the leak
    again = split_samples(SAMPLES[::-1], SAMPLE_LABELS[::-1], split_seed=3, val_fraction=0.25, test_fraction=0.2)
    assert again == sides
    assert split_samples(SAMPLES, SAMPLE_LABELS, split_seed=4, val_fraction=0.25) != sides


@pytest.mark.parametrize("change, message", [
    ({"split_unit": "voxel"}, "split_unit must be one of"),
    ({"split_unit": "slice", "view": "volume"}, "use view 'slices'"),
    ({"split_unit": "slice", "k_folds": 3}, "no k_folds"),
])
def test_a_slice_split_outside_the_slices_view_is_refused(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({**SLICES, **change})


def test_repeated_samples_are_refused():
    with pytest.raises(ConfigError, match="samples repeat"):
        split_samples(SAMPLES + SAMPLES[:1], SAMPLE_LABELS + SAMPLE_LABELS[:1], split_seed=0, val_fraction=0.3)


def test_a_slice_split_run_trains_and_scores_slices_of_the_same_patients(tmp_path):
    cache = write_cache(tmp_path / "cache", patients=12, shape=(16, 16, 8), modalities=("FLAIR",), signal=0.0)
    result = fit({**SLICES, "split_unit": "slice"}, cache, 0, device="cpu")
    assert result.split.unit == SLICE
    assert set(result.split.train) & set(result.split.val) and set(result.split.train) & set(result.split.test)
    assert len(result.ids) == len(set(result.ids))  # one score per patient: the mean of its validation slices
    honest = fit(SLICES, cache, 0, device="cpu")
    assert honest.split.unit == "patient" and not set(honest.split.train) & set(honest.split.val)


@pytest.mark.slow
def test_leak_demo_inflates_the_slice_split_on_the_null_phantom(tmp_path_factory, tmp_path, capsys):
    """leak_demo's smoke profile on its S = 0 phantom, as the quick demo runs it (one seed per split unit
    instead of three, to keep the demo quick; on the FLAIR files `study run leak_demo --phantom 0`
    writes). The slice split's test AUC exceeds the patient split's by >= 0.2, the patient split is not
    `signal`, and the report marks the slice split as leaked, beside its patient-split twin. (On CPU a
    seed repeats exactly, so this cohort's answer is fixed. Sizing, measured on the 128-patient cohort:
    slice 0.862 against patient 0.537 [0.399, 0.675], inconclusive, p = 0.33. The patient split's null
    AUC on 51 test patients has SE 0.081, so another cohort draw would miss the 0.2 gap (a patient AUC
    above ~0.66) about 2 % of the time and be `signal` 5 % of the time, the verdict's level: this is a
    demonstration on one cohort, not a calibration. The 64-patient cohort it replaced drew a patient
    split of 0.68 (p = 0.063 for one seed, `signal` at p = 0.048 over the full demo's three seeds), a
    chance association: 8 label-permutation twins of it scored 0.35-0.67, mean 0.53.)"""
    result, _ = quick_demo(tmp_path_factory)
    runs = result.report.parent / "work" / "leak" / "runs"
    capsys.readouterr()
    assert main(["study", "status", "leak_demo", "--runs-dir", str(runs), "--json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["state"] == "COMPLETE"]
    assert sorted(r["split_unit"] for r in rows) == ["patient", "slice"]
    assert all(r["split_unit"] == r["params"]["split_unit"] for r in rows)
    assert main(["study", "status", "leak_demo", "--runs-dir", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()  # the text table marks the leaked trial (a newcomer missed it)
    assert [("(leaked: slice split)" in line) for line in lines if "split_unit=" in line].count(True) == 1
    out = tmp_path / "report"
    assert main(["report", "leak_demo", "--runs-dir", str(runs), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    [pair] = summary["leakage"]
    assert pair["auc_gap"] >= 0.2, pair
    assert pair["patient_verdict"] != "signal", pair
    assert summary["cohorts"][0]["answers"][0]["configuration"].endswith("(split_unit=patient)")
    html = (out / "index.html").read_text()
    assert "Slice-level leakage" in html and "(leaked)" in html
    # the header counts the patient split's patients and states the slice split as leaked, not as a split
    assert "51 held-out test patients; slice split (leaked): the slices of 128 patients pooled" in html


def test_leak_demo_runs_both_split_units_on_every_seed(tmp_path):
    """leak_demo's grid sampler gives each split unit its three seeds, nothing twice (the real worker
    loop with a trainer that does not train; the grid sampler once failed there with KeyError
    'grid_id', and a random sampler over two choices re-proposed configurations)."""
    from study_helpers import FakeTrainer

    from mgmt_audit.study.spec import load_study
    from mgmt_audit.study.storage import load_existing_study
    from mgmt_audit.study.worker import RunOptions, run_study

    spec = load_study("leak_demo", "smoke")
    url = f"sqlite:///{tmp_path / 'leak_demo.db'}"
    assert spec.sampler == "grid"
    counts = run_study(spec, RunOptions(storage=url, runs_dir=tmp_path, n_trials=spec.n_trials, heartbeat=1, threads=1,
                                        progress=False), train=FakeTrainer(), log=lambda line: None)
    assert counts == {"COMPLETE": 6}
    trials = load_existing_study("leak_demo", url).main.trials
    assert sorted((t.params["split_unit"], t.user_attrs["seed"]) for t in trials) == [
        (unit, seed) for unit in ("patient", "slice") for seed in spec.seeds]
