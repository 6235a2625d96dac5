"""``mgmt-audit study run`` on the digits control without --data: the study writes its own digits
cohort under runs/<study>/ at the profile's size and trains on it, a later run reuses it, --phantom
is refused with a message naming the fix, and a study of MRI data still needs --data or --phantom."""

from __future__ import annotations

import numpy as np
from study_helpers import write_spec

from mgmt_audit.cli import main
from mgmt_audit.data.controls import digit_classes
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.study.storage import default_storage, load_existing_study
from mgmt_audit.train.result import RunResult

DIGITS_SPEC = """
description = "tiny digits control: 3D ResNet10 (smoke sizes) on 16x16x4 digit volumes"
n_trials = 2
null_trials = 1
[data]
dataset = "digits"
modalities = ["FLAIR"]
view = "volume"
[data.preprocess]
size = 256
depth = 64
[model]
family = "resnet10_3d"
preset = "smoke"
[train]
lr = 3e-3
epochs = 1
batch_size = 8
val_fraction = 0.25
[seeds]
count = 1
[sampler]
name = "random"
seed = 0
[profiles.paper]
[profiles.smoke.data]
phantom = { patients = 40, seed = 3 }
[profiles.smoke.data.preprocess]
size = 16
depth = 4
"""


def run(tmp_path, name, *extra):
    return main(["study", "run", str(tmp_path / f"{name}.toml"), "--profile", "smoke", "--runs-dir",
                 str(tmp_path / "runs"), "--device", "cpu", "--threads", "1", *extra])


def test_digits_study_writes_its_cohort_at_the_profile_size_and_trains_on_it(tmp_path):
    (tmp_path / "tiny_digits.toml").write_text(DIGITS_SPEC)
    assert run(tmp_path, "tiny_digits") == 0
    cohort = tmp_path / "runs" / "tiny_digits" / "digits-n40-16x4-seed3"
    manifest = Manifest.load(cohort)
    assert manifest.dataset == "digits" and manifest.split_seed == 3
    digits = digit_classes(cohort)
    assert sorted(digits) == sorted(p.id for p in manifest.patients)
    assert all(p.label == int(digits[p.id] >= 5) for p in manifest.patients)
    assert sum(p.label for p in manifest.patients) == 20
    volume = np.load(manifest.array_path(manifest.patients[0], "FLAIR"))
    assert volume.shape == (16, 16, 4)
    np.testing.assert_array_equal(volume[..., 0], volume[..., 3])  # one digit, repeated along depth

    study = load_existing_study("tiny_digits", default_storage("tiny_digits", tmp_path / "runs"))
    complete = [t for t in study.trials() if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["null"] for t in complete) == [False, True]
    for trial in complete:
        result = RunResult.load(trial.user_attrs["artifacts"])
        assert len(result.ids) == 10 and set(result.ids) <= set(digits)

    written = (cohort / "manifest.json").stat().st_mtime_ns
    assert run(tmp_path, "tiny_digits", "--n-trials", "2") == 0  # already done: reuses, rewrites nothing
    assert (cohort / "manifest.json").stat().st_mtime_ns == written
    # the digits cache given as data (as the demo gives it) is accepted at its size, refused at another
    assert run(tmp_path, "tiny_digits", "--n-trials", "2", "--data", str(cohort)) == 0


def test_a_digits_cache_of_another_size_is_refused_with_the_fix(tmp_path, capsys):
    from mgmt_audit.data.controls import write_digits_cohort

    (tmp_path / "tiny_digits.toml").write_text(DIGITS_SPEC)
    other = write_digits_cohort(tmp_path / "digits8", n=40, size=8, depth=4, seed=3).folder
    assert run(tmp_path, "tiny_digits", "--data", str(other)) == 2
    err = capsys.readouterr().err
    assert "holds 8 x 8 x 4 digits" in err and "asks for 16 x 16 x 4" in err and "(option --data)" in err


def test_digits_study_refuses_a_phantom(tmp_path, capsys):
    (tmp_path / "tiny_digits.toml").write_text(DIGITS_SPEC)
    assert run(tmp_path, "tiny_digits", "--phantom", "0.5") == 2
    err = capsys.readouterr().err
    assert "trains on MNIST digits, not on a phantom: give no phantom" in err and err.rstrip().endswith("(option --phantom)")
    assert not (tmp_path / "runs" / "tiny_digits").exists()


def test_mri_study_still_needs_data_or_a_phantom(tmp_path, capsys):
    write_spec(tmp_path, "tiny_mri")
    assert run(tmp_path, "tiny_mri") == 2
    err = capsys.readouterr().err
    assert "give exactly one of data (an ingested cache or a raw cohort root) or phantom" in err
    assert err.rstrip().endswith("(option --data)")
