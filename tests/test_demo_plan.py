"""The full demo (too slow to run here: about 7 minutes on 2 cores) holds what the README promises:
its cohorts and strengths, 240 patients each with 96 held-out test patients, two model families over
seeds with label-permutation nulls, and the digits control; every spec it runs loads with the demo's
overrides. The quick demo runs end to end in ``test_demo.py``."""

from __future__ import annotations

import pytest

from mgmt_audit.demo import (
    CONTROL_STUDY,
    DEMO_TRAIN,
    FULL,
    MODALITIES,
    PREPROCESS,
    PROFILE,
    QUICK,
    demo_spec,
)
from mgmt_audit.study.spec import load_study


def test_the_full_plan_is_the_readmes():
    # README: a cohort with no signal, a strong one and intermediate strengths, 240 patients each,
    # judged on 96 held-out test patients
    assert [(c.name, c.strength) for c in FULL.cohorts] == [("null", 0.0), ("weak", 0.25), ("medium", 0.5),
                                                           ("signal", 1.0)]
    assert [(c.name, c.strength) for c in QUICK.cohorts] == [("null", 0.0), ("signal", 1.0)]
    assert FULL.patients == QUICK.patients == 240 and round(DEMO_TRAIN["test_fraction"] * FULL.patients) == 96
    assert FULL.probe and not QUICK.probe  # layer probes and the digits control in the full demo only
    assert set(QUICK.studies) < set(FULL.studies)


@pytest.mark.parametrize("name", FULL.studies)
def test_every_study_of_the_full_plan_loads_with_the_demo_overrides(name):
    spec = demo_spec(name)
    assert spec.profile == PROFILE and spec.margin == 0.65
    assert len(spec.seeds) >= 2 and spec.null_trials >= 1  # seeds judged together, a pipeline null
    assert spec.train_dict({})["test_fraction"] == DEMO_TRAIN["test_fraction"]
    assert spec.train_dict({})["val_fraction"] == DEMO_TRAIN["val_fraction"]
    assert set(spec.modalities_read) <= set(MODALITIES)  # the one modality the demo writes
    assert {k: spec.preprocess_dict({})[k] for k in PREPROCESS} == PREPROCESS


def test_the_full_plan_runs_two_model_families_and_the_digits_control():
    families = {demo_spec(name).model["family"] for name in FULL.studies}
    assert len(families) == 2
    control = load_study(CONTROL_STUDY, PROFILE)
    assert control.data["dataset"] == "digits" and control.null_trials >= 1
