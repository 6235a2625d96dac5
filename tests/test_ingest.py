"""Ingest end to end on a small phantom cohort: statuses, cache, resume, bad inputs, privacy, BraTS."""

import json
import os
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from mgmt_audit.cli import main
from mgmt_audit.data import ingest as ingest_module
from mgmt_audit.data.brats import task1_overlap
from mgmt_audit.data.description import load_dataset_description, read_labels
from mgmt_audit.data.ingest import NOT_DONE, ingest
from mgmt_audit.data.manifest import MODALITIES, Manifest
from mgmt_audit.data.phantom import write_phantom_cohort
from mgmt_audit.data.preprocess import PreprocessSpec
from mgmt_audit.errors import CohortError

SPEC = PreprocessSpec(size=(32, 32), depth=16)
PATIENTS = 6


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six S = 0 phantom patients (DICOM and BraTS Task-1 NIfTI), 32 x 32 matrix; written once."""
    return write_phantom_cohort(
        tmp_path_factory.mktemp("phantom"), patients=PATIENTS, signal=0.0, seed=3, nifti=True, matrix=32
    )


def copy_train(cohort, dest: Path) -> Path:
    """A private copy of the DICOM cohort (mtimes kept) for tests that change files."""
    shutil.copytree(cohort.root / "train", dest / "train")
    return dest


def array_mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*.npy")}


def test_ingest_end_to_end_resume_and_new_spec(cohort, tmp_path):
    root = copy_train(cohort, tmp_path / "src")
    out = tmp_path / "cache"
    first = ingest(root, cohort.labels_csv, out, spec=SPEC, workers=2, progress=False)
    manifest = Manifest.load(out)
    assert [p.status for p in manifest.patients] == ["ok"] * PATIENTS
    assert {p.id: p.label for p in manifest.patients} == cohort.labels
    assert sorted(first.processed) == sorted(cohort.labels) and first.reused == []
    for patient in manifest.patients:
        for modality in MODALITIES:
            array = np.load(manifest.array_path(patient, modality))
            assert array.shape == SPEC.shape and array.dtype == np.float32
            record = patient.series[modality]
            assert record.plane in ("axial", "sagittal", "coronal") and record.n_slices >= 20
            assert 0 <= record.oblique_deg <= 20 and record.target_spacing == pytest.approx(SPEC.spacing)
            assert record.path.startswith(f"{SPEC.hash}/{patient.id}/")
    summary = manifest.summary()
    assert summary["ok"] == PATIENTS and summary["quarantined"] == 0
    assert all(sum(m["planes"].values()) == PATIENTS for m in summary["modalities"].values())
    assert manifest.preprocess == SPEC.to_dict() and manifest.split_seed == 42

    # re-run: nothing read again, no array rewritten
    before = array_mtimes(out)
    again = ingest(root, cohort.labels_csv, out, spec=SPEC, workers=1, progress=False)
    assert again.processed == [] and sorted(again.reused) == sorted(cohort.labels)
    assert array_mtimes(out) == before

    # touching one source file re-ingests that patient only
    touched = next((root / "train" / "00002" / "T1w").iterdir())
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    third = ingest(root, cohort.labels_csv, out, spec=SPEC, dataset=None, progress=False)
    assert third.processed == ["00002"] and len(third.reused) == PATIENTS - 1
    assert third.manifest.dataset == "custom" and third.notes == []
    changed = {k for k, v in array_mtimes(out).items() if before[k] != v}
    assert changed == {f"{SPEC.hash}/00002/{m}.npy" for m in MODALITIES}

    # a changed spec gets its own hash folder; the old cache stays
    other = PreprocessSpec(size=(24, 24), depth=8, slice_mode="resample")
    fourth = ingest(root, cohort.labels_csv, out, spec=other, modalities=["FLAIR"], progress=False)
    assert len(fourth.processed) == PATIENTS and (out / other.hash).is_dir() and (out / SPEC.hash).is_dir()
    reloaded = Manifest.load(out)
    assert reloaded.preprocess_hash == other.hash
    assert np.load(reloaded.array_path(reloaded.patients[0], "FLAIR")).shape == (24, 24, 8)


def test_interrupted_run_leaves_a_truthful_manifest_and_resumes(cohort, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    real = ingest_module.ingest_patient
    calls = []

    def interrupted(task):
        calls.append(task.patient_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(ingest_module, "ingest_patient", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ingest(cohort.root, cohort.labels_csv, out, spec=SPEC, workers=1, progress=False)
    manifest = Manifest.load(out)
    statuses = [(p.id, p.status, p.reason) for p in manifest.patients]
    assert statuses[:2] == [("00000", "ok", None), ("00001", "ok", None)]
    assert all(s == "quarantined" and r == NOT_DONE for _, s, r in statuses[2:]) and len(statuses) == PATIENTS
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temp file left behind
    monkeypatch.setattr(ingest_module, "ingest_patient", real)
    resumed = ingest(cohort.root, cohort.labels_csv, out, spec=SPEC, workers=1, progress=False)
    assert resumed.reused == ["00000", "00001"] and len(resumed.processed) == PATIENTS - 2
    assert all(p.status == "ok" for p in Manifest.load(out).patients)


def _edit(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def _plant_faults(train: Path) -> dict[tuple[str, str], str]:
    """Put each kind of bad input into one series; return (patient, modality) -> expected reason text."""
    def first(pid, modality):
        return sorted((train / pid / modality).iterdir())[0]

    shutil.copy(first("00001", "FLAIR"), train / "00000" / "FLAIR" / "Image-9999.dcm")  # other series
    (train / "00000" / "T1w" / "Image-9999.dcm").write_text("not a dicom file\n")
    data = first("00000", "T1wCE").read_bytes()
    first("00000", "T1wCE").write_bytes(data[: len(data) * 2 // 3])
    _edit(first("00000", "T2w"), lambda ds: delattr(ds, "ImageOrientationPatient"))
    _edit(first("00001", "FLAIR"), lambda ds: delattr(ds, "ImagePositionPatient"))
    _edit(first("00001", "T1w"), lambda ds: delattr(ds, "PixelSpacing"))

    def shrink(ds):
        ds.Rows = ds.Columns = 16
        ds.PixelData = np.zeros((16, 16), np.uint16).tobytes()

    _edit(first("00001", "T1wCE"), shrink)

    def jpeg_ls(ds):  # labelled JPEG-LS, but the bytes are raw pixels: the decoder refuses them
        ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLSLossless
        ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])

    for path in (train / "00001" / "T2w").iterdir():
        _edit(path, jpeg_ls)
    shutil.rmtree(train / "00002" / "T2w")
    return {
        ("00000", "FLAIR"): "2 series in one folder",
        ("00000", "T1wCE"): "truncated",
        ("00000", "T2w"): "ImageOrientationPatient",
        ("00001", "FLAIR"): "ImagePositionPatient",
        ("00001", "T1w"): "PixelSpacing",
        ("00001", "T1wCE"): "mismatched Rows/Columns",
        ("00001", "T2w"): "cannot be decoded",
        ("00002", "T2w"): "no T2w folder",
    }


PHI = {"PatientName": "Doe^Jane", "PatientBirthDate": "19601224", "StudyDate": "20200102",
       "InstitutionName": "St Example Hospital", "ReferringPhysicianName": "House^Gregory"}


def test_bad_inputs_are_quarantined_and_the_rest_ingested_without_phi(cohort, tmp_path):
    root = copy_train(cohort, tmp_path / "src")
    train = root / "train"
    expected = _plant_faults(train)
    for path in (train / "00003" / "T2w").iterdir():  # person fields a real scan would carry
        _edit(path, lambda ds: [setattr(ds, k, v) for k, v in PHI.items()])
    shutil.copytree(train / "00004", train / "00109")  # an organiser-flagged case
    shutil.copytree(train / "00005", train / "00321")  # a folder without a label
    labels = tmp_path / "labels.csv"
    labels.write_text(cohort.labels_csv.read_text() + "109,1\n777,0\n")  # 777: a label without a folder
    out = tmp_path / "cache"
    result = ingest(root, labels, out, spec=SPEC, workers=1, export_nifti=True, progress=False)
    manifest = Manifest.load(out)
    status = {p.id: p for p in manifest.patients}
    for (pid, modality), text in expected.items():
        record = status[pid].series[modality]
        assert record.status == ("missing" if text.startswith("no T2w") else "quarantined")
        assert text in record.reason, record.reason
        assert f"{modality}: " in status[pid].reason and status[pid].status == "quarantined"
    assert status["00002"].series["FLAIR"].ok and (out / status["00002"].series["FLAIR"].path).is_file()
    # a stray text file in a series folder is skipped, and the skip recorded; the series is read
    stray = status["00000"].series["T1w"]
    assert stray.ok and stray.skipped == ["Image-9999.dcm: not a DICOM file (no 'DICM' header and no image tags)"], stray
    assert [status[p].status for p in ("00003", "00004", "00005", "00321")] == ["ok"] * 4
    assert status["00321"].label is None
    assert status["00777"].status == "quarantined" and status["00777"].reason == "no image folder"
    assert "flagged by the organisers" in status["00109"].reason and not status["00109"].series
    assert "00109" not in result.processed
    exported = nib.load(out / "nifti" / "00003" / "T1wCE.nii.gz")  # the reoriented source, RAS+
    assert list(exported.shape) == status["00003"].series["T1wCE"].source_shape
    assert nib.aff2axcodes(exported.affine) == ("R", "A", "S")

    # privacy: no header value beyond ID and label, no UID, no absolute path, in manifest or records
    texts = [(out / "manifest.json").read_text()] + [p.read_text() for p in out.rglob("record.json")]
    uids = set()
    for path in list((train / "00003" / "T2w").iterdir())[:3] + list((train / "00000" / "FLAIR").iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        uids |= {str(ds[k].value) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
                                              "FrameOfReferenceUID") if k in ds}
    for text in texts:
        for value in [*PHI.values(), "Doe", "1960", *uids, str(tmp_path)]:
            assert value not in text
        assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", text)
    patient_keys = {k for p in json.loads(texts[0])["patients"] for k in p}
    assert patient_keys == {"id", "label", "status", "reason", "series", "mask_path", "fingerprint"}


def test_brats_task1_masks_on_one_grid_and_overlap(cohort, tmp_path):
    out = tmp_path / "cache"
    spec = PreprocessSpec(size=(40, 40), depth=16, slice_mode="resample")  # 6 mm, whole head: every tumour in
    ingest(cohort.brats, cohort.labels_csv, out, spec=spec, layout="brats-task1", progress=False)
    manifest = Manifest.load(out)
    assert manifest.layout == "brats-task1" and all(p.status == "ok" for p in manifest.patients)
    for patient in manifest.patients:
        mask = np.load(manifest.resolve(patient.mask_path))
        assert mask.shape == spec.shape and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1, 2, 4}
        t1ce = np.load(manifest.array_path(patient, "T1wCE"))
        flair = np.load(manifest.array_path(patient, "FLAIR"))
        assert (mask == 4).sum() >= 10 and (mask == 2).sum() >= 10
        # the enhancing rim is bright on T1wCE and the oedema on FLAIR (z-scores): aligned, not shifted
        assert t1ce[mask == 4].mean() > t1ce[(mask == 0) & (t1ce > 0)].mean() + 1.0
        assert flair[mask == 2].mean() > flair[(mask == 0) & (flair > 0)].mean() + 1.5

    ids = tmp_path / "validation.csv"
    ids.write_text("BraTS21ID,MGMT_value\n2,1\n4,0\n950,1\n")
    assert task1_overlap(cohort.brats, ids) == ["00002", "00004"]
    assert task1_overlap(cohort.brats, ["00950"]) == []
    plain = tmp_path / "ids.txt"
    plain.write_text("00005\n")
    assert main(["brats-overlap", str(cohort.brats), "--ids", str(plain)]) == 1
    assert main(["brats-overlap", str(cohort.brats), "--ids", str(tmp_path / "none.txt")]) == 2


def test_cli_exit_status_and_description(cohort, tmp_path, capsys):
    args = ["ingest", str(cohort.root), "--out", str(tmp_path / "c"), "--size", "32", "32", "--depth", "16",
            "--workers", "1", "--modalities", "FLAIR"]
    assert main([*args, "--labels", str(cohort.labels_csv)]) == 0
    shown = capsys.readouterr().out
    assert f"patients {PATIENTS}  ok {PATIENTS}" in shown and "FLAIR" in shown and "T2w" not in shown
    unlabelled = tmp_path / "other.csv"
    unlabelled.write_text("BraTS21ID,MGMT_value\n999,1\n")
    assert main([*args, "--labels", str(unlabelled)]) == 1  # nothing usable (cache reused: fast)
    assert "nothing usable" in capsys.readouterr().out

    description = load_dataset_description("rsna_miccai_2021")
    assert description.cases == 585 == description.positive + description.negative
    assert set(description.flagged) == {"00109", "00123", "00709"} and description.split_seed == 42
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\n1,0\n")
    with pytest.raises(CohortError, match="BraTS21ID"):
        read_labels(bad)
    bad.write_text("BraTS21ID,MGMT_value\n1,0\n2,1\n1,1\n")
    with pytest.raises(CohortError, match="patient 00001 is on line 2 and on line 4; keep one row"):
        read_labels(bad)


def test_expected_disk_use_is_the_arrays_bytes():
    from mgmt_audit.data.ingest import expected_bytes

    # the numbers: 24 patients, four modalities at 256 x 256 x 64 float32 = 1.6 GB
    assert expected_bytes(24, MODALITIES, PreprocessSpec(size=(256, 256), depth=64)) == 24 * 4 * 256 * 256 * 64 * 4
    assert expected_bytes(2, ["FLAIR"], SPEC, layout="brats-task1") == 2 * (32 * 32 * 16 * 5)  # + uint8 mask


def test_ingest_for_a_study_reads_only_its_modalities_and_says_the_disk_use(cohort, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["ingest", str(cohort.root), "--labels", str(cohort.labels_csv), "--out", str(out),
                 "--study", "demo", "--profile", "smoke", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    spec = PreprocessSpec(size=(16, 16), depth=8)  # demo's smoke profile
    first = captured.out.splitlines()[0]
    assert first.startswith(f"ingest: {PATIENTS} patients x 1 modalities (FLAIR) -> {out / spec.hash}")
    assert f"about {PATIENTS * 16 * 16 * 8 * 4 / 1024:.1f} KiB on disk" in first
    manifest = Manifest.load(out)
    assert manifest.modalities == ["FLAIR"] and manifest.preprocess_hash == spec.hash
    assert {m for p in manifest.patients for m in p.series} == {"FLAIR"}
    assert "ingest" in captured.err and f"{PATIENTS}/{PATIENTS}" in captured.err  # the progress bar
    assert main(["ingest", str(cohort.root), "--labels", str(cohort.labels_csv), "--out", str(out),
                 "--study", "demo", "--size", "8", "8"]) == 2
    assert "--study demo sets the preprocessing; leave out --size" in capsys.readouterr().err


def test_an_empty_label_cell_is_ingested_unlabelled_with_a_note(cohort, tmp_path):
    labels = tmp_path / "labels.csv"
    rows = cohort.labels_csv.read_text().splitlines()
    rows[1] = rows[1].split(",")[0] + ","  # the first patient's label cell left empty
    labels.write_text("\r\n".join(rows) + "\r\n")
    first = f"{int(rows[1].rstrip(',')):05d}"
    result = ingest(cohort.root, labels, tmp_path / "c", spec=SPEC, modalities=["FLAIR"], dataset=None,
                    progress=False)
    record = result.manifest.patient(first)
    assert record.label is None and record.status == "ok"
    assert result.notes == [f"labels file: 1 patient(s) with an empty label cell, ingested unlabelled: {first}"]


def test_a_brats_image_that_fails_preprocessing_is_quarantined_with_its_reason(cohort, tmp_path):
    """A SeriesError while preprocessing one Task-1 image (here: a FLAIR whose only foreground, a 4 mm
    speck, is averaged below the threshold on the 7.5 mm grid) quarantines that image with the reason,
    not the case as an internal error."""
    root = tmp_path / "brats"
    shutil.copytree(cohort.brats / "BraTS2021_00000", root / "BraTS2021_00000")
    flair = root / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    image = nib.load(flair)
    speck = np.zeros(image.shape, np.int16)
    speck[40:42, 50:52, 44:46] = 1000
    nib.save(nib.Nifti1Image(speck, image.affine), flair)
    labels = tmp_path / "labels.csv"
    labels.write_text("BraTS21ID,MGMT_value\n0,1\n")
    spec = PreprocessSpec(size=(32, 32), depth=16, foreground="threshold", threshold=300.0)
    result = ingest(root, labels, tmp_path / "c", spec=spec, layout="brats-task1", dataset=None, progress=False)
    record = result.manifest.patient("00000")
    assert record.series["FLAIR"].status == "quarantined"
    assert "BraTS2021_00000_flair.nii.gz: no foreground voxel on the target grid" in record.series["FLAIR"].reason
    assert "internal error" not in (record.reason or "")
    assert all(record.series[m].ok for m in ("T1w", "T1wCE", "T2w")) and record.mask_path
