"""Command-line options that change a result, each shown to change it: ``--version``,
``python -m mgmt_audit.cli``, and ``mgmt-audit ingest``'s dataset, split, export and preprocessing
options on a small phantom cohort; ingest's internal-error path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mgmt_audit import __version__
from mgmt_audit.cli import main
from mgmt_audit.data import ingest as ingest_module
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.data.phantom import write_phantom_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Four S = 0 phantom patients (DICOM and BraTS Task-1 NIfTI), 32 x 32 matrix."""
    return write_phantom_cohort(tmp_path_factory.mktemp("phantom"), patients=4, signal=0.0, seed=5, nifti=True,
                                matrix=32)


def ingest_cli(cohort, out, *extra: str, root=None) -> int:
    return main(["ingest", str(root or cohort.root), "--labels", str(cohort.labels_csv), "--out", str(out),
                 "--modalities", "FLAIR", "--workers", "1", "--size", "16", "16", "--depth", "8", *extra])


def test_version_and_python_dash_m_run_the_same_entry_point(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"mgmt-audit {__version__}\n"
    module = subprocess.run([sys.executable, "-m", "mgmt_audit.cli", "--version"], capture_output=True, text=True)
    assert (module.returncode, module.stdout) == (0, f"mgmt-audit {__version__}\n")
    bad = subprocess.run([sys.executable, "-m", "mgmt_audit.cli", "audit-claim", "--auc", "83", "--n-pos", "6",
                          "--n-neg", "6"], capture_output=True, text=True)
    assert bad.returncode == 2 and "mgmt-audit audit-claim: error:" in bad.stderr and "83%" in bad.stderr


def test_ingest_records_the_split_seed_and_dataset_it_is_given(cohort, tmp_path):
    assert ingest_cli(cohort, tmp_path / "default") == 0
    default = Manifest.load(tmp_path / "default")
    assert (default.dataset, default.split_seed) == ("rsna_miccai_2021", 42)  # the description's seed
    assert ingest_cli(cohort, tmp_path / "seeded", "--split-seed", "123", "--dataset", "none") == 0
    seeded = Manifest.load(tmp_path / "seeded")
    assert (seeded.dataset, seeded.split_seed) == ("custom", 123)


def test_ingest_excludes_a_flagged_case_unless_told_not_to(cohort, tmp_path):
    flagged = sorted(cohort.labels)[1]
    description = tmp_path / "mine.toml"
    description.write_text(
        'name = "mine"\nsplit_seed = 9\nexclude_flagged = true\n[layout]\nmodalities = ["FLAIR"]\n'
        f'[[flagged]]\nid = "{flagged}"\nreason = "broken on purpose"\n')
    assert ingest_cli(cohort, tmp_path / "excluded", "--dataset", str(description)) == 0
    excluded = Manifest.load(tmp_path / "excluded")
    record = excluded.patient(flagged)
    assert (excluded.dataset, excluded.split_seed) == ("mine", 9)
    assert record.status != "ok" and "broken on purpose" in record.reason
    assert flagged not in {p.id for p in excluded.usable_patients(["FLAIR"])}
    assert ingest_cli(cohort, tmp_path / "kept", "--dataset", str(description), "--no-exclude-flagged") == 0
    assert Manifest.load(tmp_path / "kept").patient(flagged).status == "ok"


def test_ingest_preprocessing_flags_are_applied_recorded_and_hashed(cohort, tmp_path):
    assert ingest_cli(cohort, tmp_path / "plain") == 0
    assert ingest_cli(cohort, tmp_path / "flags", "--normalise", "minmax", "--slice-mode", "resample",
                      "--clahe", "--foreground", "threshold", "--threshold", "0.05",
                      "--spacing", "12", "12", "15") == 0
    plain, flags = Manifest.load(tmp_path / "plain"), Manifest.load(tmp_path / "flags")
    recorded = flags.preprocess
    assert (recorded["normalise"], recorded["slice_mode"], recorded["clahe"]) == ("minmax", "resample", True)
    assert (recorded["foreground"], recorded["threshold"]) == ("threshold", 0.05)
    assert tuple(recorded["spacing"]) == (12.0, 12.0, 15.0) and tuple(recorded["size"]) == (16, 16)
    assert flags.preprocess_hash != plain.preprocess_hash  # the cache key follows the flags
    for patient in flags.patients:
        array = np.load(flags.array_path(patient, "FLAIR"))
        assert array.shape == (16, 16, 8) and array.min() >= 0.0 and array.max() == pytest.approx(1.0)
        # in-plane as asked; resample mode divides the head's axial extent into D slices instead
        assert patient.series["FLAIR"].target_spacing[:2] == pytest.approx((12.0, 12.0))
    zscore = np.concatenate([np.load(plain.array_path(p, "FLAIR")).ravel() for p in plain.patients])
    assert zscore.min() < 0.0  # the default z-score normalisation is not minmax


def test_ingest_exports_nifti_and_reads_the_brats_layout(cohort, tmp_path):
    assert ingest_cli(cohort, tmp_path / "dicom", "--export-nifti") == 0
    exported = sorted(p.relative_to(tmp_path / "dicom" / "nifti").as_posix()
                      for p in (tmp_path / "dicom" / "nifti").rglob("*.nii.gz"))
    assert exported == [f"{pid}/FLAIR.nii.gz" for pid in sorted(cohort.labels)]
    assert ingest_cli(cohort, tmp_path / "brats", "--layout", "brats-task1", root=cohort.brats) == 0
    brats = Manifest.load(tmp_path / "brats")
    assert brats.layout == "brats-task1" and all(p.mask_path for p in brats.patients)
    assert not (tmp_path / "brats" / "nifti").exists()


def test_an_unexpected_error_in_one_patient_is_recorded_and_the_rest_ingested(cohort, tmp_path, monkeypatch,
                                                                                capsys):
    real, victim = ingest_module.ingest_patient, sorted(cohort.labels)[0]

    def failing(task):
        if task.patient_id == victim:
            raise MemoryError("cannot allocate 9 GiB")
        return real(task)

    monkeypatch.setattr(ingest_module, "ingest_patient", failing)
    assert ingest_cli(cohort, tmp_path / "c") == 0  # the others are usable
    manifest = Manifest.load(tmp_path / "c")
    record = manifest.patient(victim)
    assert record.status == "quarantined"
    assert record.reason == ("internal error (MemoryError: cannot allocate 9 GiB); re-run ingest, "
                             "report if it persists")
    assert sorted(p.id for p in manifest.patients if p.status == "ok") == sorted(cohort.labels)[1:]
    monkeypatch.setattr(ingest_module, "ingest_patient", real)
    assert ingest_cli(cohort, tmp_path / "c") == 0  # a re-run ingests the patient
    assert Manifest.load(tmp_path / "c").patient(victim).status == "ok"


def test_output_piped_into_head_stops_quietly():
    """Found by a newcomer: `mgmt-audit audit-claim --literature --json | head -1` printed a
    BrokenPipeError traceback."""
    import subprocess
    import sys

    command = (f"{sys.executable} -m mgmt_audit.cli audit-claim --literature --json | head -1")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "{" and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
