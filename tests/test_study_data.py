"""Which cache a study trains on: a cache preprocessed otherwise is refused (both specs, the fix),
a raw root's cache is shared by every study that needs it, and the cache used is recorded so the
report shows it."""

from __future__ import annotations

import optuna
import pytest

from mgmt_audit.cli import main
from mgmt_audit.data import ingest as ingest_module
from mgmt_audit.data.manifest import Manifest
from mgmt_audit.data.phantom import write_phantom_cohort
from mgmt_audit.errors import ConfigError
from mgmt_audit.report.build import report_study
from mgmt_audit.study.data import cohort_source, root_cache_folder, trained_caches
from mgmt_audit.study.spec import load_study

from cache_factory import write_cache
from report_factory import synthetic_run
from study_helpers import write_spec


def test_a_cache_preprocessed_otherwise_is_refused_with_both_specs_and_the_fix(tmp_path, capsys):
    big = tmp_path / "big"
    write_cache(big, patients=8, shape=(32, 32, 16), modalities=("FLAIR",))  # the tiny spec asks 16x16x8
    spec = load_study(str(write_spec(tmp_path, "tiny")), "smoke")
    with pytest.raises(ConfigError) as info:
        cohort_source(spec, tmp_path / "runs", data=big)
    message = str(info.value)
    for fragment in ("32x32x16 at 7.5 x 7.5 x 10 mm", "16x16x8 at 15 x 15 x 20 mm", str(big),
                     "mgmt-audit ingest ROOT --labels CSV --out NEW_DIR --study tiny --profile smoke",
                     "raw cohort root"):
        assert fragment in message, message
    # the command line refuses before creating a study or training anything
    assert main(["study", "run", str(tmp_path / "tiny.toml"), "--profile", "smoke", "--data", str(big),
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "was preprocessed as 32x32x16" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "tiny.db").exists()


def test_the_cache_a_study_trained_on_is_recorded_and_reported(tmp_path):
    cache = tmp_path / "elsewhere" / "rsna"
    write_cache(cache, patients=8, shape=(16, 16, 8), modalities=("FLAIR",))
    spec = load_study(str(write_spec(tmp_path, "tiny")), "smoke")
    runs = tmp_path / "runs"
    source = cohort_source(spec, runs, data=cache)
    assert source(spec.preprocess_dict({})) == cache
    source(spec.preprocess_dict({}))  # every trial calls it: recorded once
    assert trained_caches(runs, "tiny") == [cache.resolve()]

    storage = f"sqlite:///{tmp_path / 'tiny.db'}"
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.set_user_attr("profile", "smoke")
    result = synthetic_run(0, 2.0)
    folder = result.save(runs / "tiny" / "0")
    study.add_trial(optuna.trial.create_trial(
        value=result.val_auc, params={}, distributions={},
        user_attrs={"seed": 0, "null": False, "val_auc": result.val_auc, "artifacts": str(folder),
                    "config_id": "a"}))
    html = report_study("tiny", storage=storage, runs_dir=runs, out=tmp_path / "report").read_text()
    data_section = html[html.index("Data</h2>"):html.index("Reproducibility</h2>")]
    assert "no data manifest was found" not in data_section
    assert ">rsna<" in data_section and Manifest.load(cache).preprocess_hash in data_section


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    return write_phantom_cohort(tmp_path_factory.mktemp("raw"), patients=3, signal=0.0, seed=1, matrix=16,
                                workers=1).root


def test_a_raw_root_is_ingested_once_and_reused_by_every_study(raw_root, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    first = load_study(str(write_spec(tmp_path, "first")), "smoke")
    out = cohort_source(first, runs, data=raw_root)(first.preprocess_dict({}))
    assert out.parent == root_cache_folder(runs, raw_root) and out.name.endswith("-FLAIR")
    said = capsys.readouterr().err
    assert f"ingesting {raw_root}" in said and str(out) in said and "reuses it" in said

    def no_second_ingest(*args, **kwargs):
        raise AssertionError("the cache exists: it must be reused, not ingested again")

    monkeypatch.setattr(ingest_module, "ingest", no_second_ingest)
    (tmp_path / "other").mkdir()
    second = load_study(str(write_spec(tmp_path / "other", "second")), "smoke")
    assert cohort_source(second, runs, data=raw_root)(second.preprocess_dict({})) == out
    assert trained_caches(runs, "second") == [out.resolve()]
