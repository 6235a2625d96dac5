"""Layer probes for the report: the first probed seed run of every study (one with ``features.npz``)
through :func:`mgmt_audit.analysis.probes.probe_run_dir` (openTSNE embedding and separability per
layer). Studies run without probing are simply absent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mgmt_audit.analysis.probes import LayerProbe, probe_run_dir
from mgmt_audit.report.collect import StudyRuns, TrialRun


@dataclass
class StudyProbe:
    """One study's probed run and its layers, shallow to deep."""

    study: StudyRuns
    run: TrialRun
    layers: list[LayerProbe]

    @property
    def name(self) -> str:
        return f"{self.study.cohort} · {self.run.config}"

    @property
    def final(self) -> float:
        """Separability of the deepest probed layer."""
        return self.layers[-1].separability


def probe_studies(studies: Sequence[StudyRuns]) -> list[StudyProbe]:
    """Probe the first finished seed run with layer features of each study."""
    probes = []
    for study in studies:
        run = next((t for t in study.finished if not t.null and t.features_path is not None), None)
        if run is not None:
            probes.append(StudyProbe(study, run, probe_run_dir(run.artifacts)))
    return probes
