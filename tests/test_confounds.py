"""The acquisition baseline (`mgmt-audit confounds`) on phantoms where the truth is known: a plane
confound planted with `--confound plane:0.9` is found; the same cohort without it is not."""

import json

import numpy as np
import pytest

from mgmt_audit.analysis.confounds import acquisition_table, confound_baseline, out_of_fold_scores
from mgmt_audit.analysis.verdict import OUT_OF_FOLD, Evidence, Run, judge
from mgmt_audit.cli import main
from mgmt_audit.data.ingest import ingest
from mgmt_audit.data.manifest import Manifest, PatientRecord, SeriesRecord
from mgmt_audit.data.phantom import FIELD_STRENGTHS, MANUFACTURERS, Confound, write_phantom_cohort
from mgmt_audit.data.preprocess import PreprocessSpec
from mgmt_audit.errors import ConfigError

PATIENTS = 40
SEED = 0


def _cohort(folder, confound):
    """40 S = 0 phantom patients (FLAIR only, 16 x 16 matrix) ingested at 8 x 8 x 4: only the
    acquisition matters here."""
    cohort = write_phantom_cohort(folder / "raw", patients=PATIENTS, signal=0.0, seed=SEED, matrix=16, workers=1,
                                  modalities=("FLAIR",), confound=confound)
    ingest(cohort.root, cohort.labels_csv, folder / "cache", spec=PreprocessSpec(size=(8, 8), depth=4),
           modalities=("FLAIR",), dataset=None, progress=False)
    return folder / "cache"


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("confounds")
    return {"confound": _cohort(root / "confound", Confound("plane", 0.9)), "plain": _cohort(root / "plain", None)}


def _baseline(cache, capsys, *extra):
    capsys.readouterr()
    assert main(["confounds", str(cache), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_planted_plane_confound_is_found(caches, capsys):
    """P = 0.9 makes FLAIR sagittal for ~90 % of label 1 and ~10 % of label 0: the plane alone gives
    AUC ~0.9; >= 0.75 fails only if the 40 patients' planes fall far from that (a - b < 10 of 20
    per class, about 1e-3 per cohort draw; this cohort's seed is fixed)."""
    result = _baseline(caches["confound"], capsys)
    assert result["verdict"] == "signal" and result["auc"] >= 0.75, result
    assert {"auc", "ci_low", "ci_high", "verdict", "weights"} <= set(result)
    top = result["weights"][0]
    assert top["feature"] == "FLAIR plane=sagittal" and top["weight"] > 0


def test_the_same_cohort_without_the_confound_is_not_found(caches, capsys):
    result = _baseline(caches["plain"], capsys)
    assert result["auc"] < 0.75 and result["verdict"] != "signal", result


def test_the_confound_ties_the_plane_to_the_label_and_nothing_else_changes(caches):
    confound, plain = (Manifest.load(caches[k]) for k in ("confound", "plain"))
    share = {y: np.mean([p.series["FLAIR"].plane == "sagittal" for p in confound.patients if p.label == y])
             for y in (0, 1)}
    assert share[1] >= 0.7 and share[0] <= 0.3, share
    assert [p.label for p in confound.patients] == [p.label for p in plain.patients]
    for record in (p.series["FLAIR"] for p in plain.patients):  # acquisition facts, recorded at ingest
        assert record.manufacturer in MANUFACTURERS and record.field_strength in FIELD_STRENGTHS


def test_missing_series_and_scanner_facts_enter_as_missing():
    def series(modality, plane, n):
        return SeriesRecord(modality, True, "ok", plane=plane, oblique_deg=0.0, n_slices=n,
                            source_spacing=[1.0, 1.0, 5.0], source_shape=[64, 64, n])
    patients = [PatientRecord(f"{i:05d}", i % 2, "ok", series={
        "FLAIR": series("FLAIR", "axial", 20 + i),
        "T1w": series("T1w", "axial", 30) if i % 3 else SeriesRecord("T1w", False, "missing")}) for i in range(12)]
    patients.append(PatientRecord("00099", 1, "ok", series={"FLAIR": SeriesRecord("FLAIR", False, "missing"),
                                                             "T1w": SeriesRecord("T1w", False, "missing")}))
    manifest = Manifest("test", "rsna-miccai", ["FLAIR", "T1w"], {}, "h", 0, patients)
    table = acquisition_table(manifest)
    assert len(table.ids) == 12  # a patient with no cached series is left out
    assert table.categorical_names == ("FLAIR plane", "T1w plane")  # no manufacturer or field strength recorded
    slices = table.numeric[:, table.numeric_names.index("T1w slices")]
    assert np.isnan(slices[::3]).all() and not np.isnan(slices[1::3]).any()
    features = {w.feature for w in confound_baseline(manifest, folds=3).weights}
    assert {"T1w slices missing", "T1w plane=missing", "FLAIR slice spacing", "FLAIR matrix"} <= features


@pytest.mark.parametrize("text", ["plane", "plane:x", "plane:1.5", "vendor:0.9"])
def test_a_bad_confound_is_refused_naming_the_option(text, tmp_path, capsys):
    with pytest.raises(ConfigError):
        Confound.parse(text)
    assert main(["phantom", str(tmp_path / "out"), "--patients", "2", "--confound", text]) == 2
    assert "--confound" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_modality_the_cache_lacks_is_refused_naming_the_option(caches, capsys):
    assert main(["confounds", str(caches["plain"]), "--modalities", "T1w"]) == 2
    assert "--modalities" in capsys.readouterr().err


@pytest.mark.parametrize("given", ["cache", "cache/manifest.json"])
def test_a_missing_cache_names_the_folder_to_ingest_into(given, tmp_path, capsys):
    # `confounds /tmp/nowhere2/cache` once told the user to ingest into /tmp/nowhere2, which fails again
    assert main(["confounds", str(tmp_path / given)]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'cache'}` first" in err


def test_the_baseline_is_centred_at_chance_when_the_labels_are_permuted(caches):
    """Calibration: the plain cohort's acquisition with its labels permuted 60 times (so nothing can
    predict them). Pooled out-of-fold AUCs of a cross-validated model are centred at 0.5 (an in-sample
    fit would read ~0.7 here); on 40 patients their sd is ~0.11, so a mean outside 0.5 +- 0.06 (4 sd of
    the mean of 60) has probability < 1e-4 under correct code. The verdict is judged on each: `signal`
    has size 0.05, and more than 10 of 60 has probability ~1e-4 (binomial)."""
    table = acquisition_table(Manifest.load(caches["plain"]))
    rng = np.random.default_rng(2026)
    aucs, signals = [], 0
    for draw in range(60):
        labels = rng.permutation(table.labels)
        scores = out_of_fold_scores(table, labels, folds=5, seed=draw)
        verdict = judge(Evidence("null", runs=[Run(labels, scores)], design=OUT_OF_FOLD))
        aucs.append(verdict.auc)
        signals += verdict.verdict == "signal"
    assert abs(np.mean(aucs) - 0.5) < 0.06, np.mean(aucs)
    assert signals <= 10, signals


def test_a_file_or_a_raw_dicom_folder_is_not_taken_for_a_cache(caches, tmp_path, capsys):
    """Found by a newcomer: `confounds report/index.html` said the file was not valid JSON and to delete
    it; `confounds <raw DICOM root>` advised ingesting into the raw folder itself."""
    page = tmp_path / "index.html"
    page.write_text("<html></html>")
    assert main(["confounds", str(page)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not an ingested cache" in err and "delete" not in err
    raw = caches["plain"].parent / "raw"
    assert main(["confounds", str(raw)]) == 2
    err = capsys.readouterr().err
    assert "holds DICOM series, not an ingested cache" in err and f"--out {raw}`" not in err
