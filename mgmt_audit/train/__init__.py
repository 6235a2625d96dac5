"""Training: ``fit(config, data, seed)`` trains one model on a patient-level split -> ``RunResult``."""

from mgmt_audit.train.config import TrainConfig
from mgmt_audit.train.loop import fit
from mgmt_audit.train.result import RunResult

__all__ = ["RunResult", "TrainConfig", "fit"]
