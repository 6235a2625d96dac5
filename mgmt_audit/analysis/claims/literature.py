"""The published claims (``data_manifests/claims/*.toml``), each audited, one row per claim.

A file holds one paper's claims::

    [paper]
    title = "..."            # as cited
    file = "003_....txt"     # the plain text in ../shared/papers/ the claims are quoted from

    [[claim]]
    id = "yogananda2020"
    study = "Yogananda et al."
    year = 2020              # left out when the source does not give it
    marker = "MGMT"
    cohort = "TCIA / TCGA"
    quoted_from = "Related Work: 'a mean cross-validation accuracy of 94.73% across 3 folds ...'"
    metrics = { accuracy = "94.73%", sensitivity = "96.31%", specificity = "91.66%" }
    n = 247                  # or n_pos / n_neg, or class_sizes; left out when the paper does not say
    n_source = "..."         # where the size is from when it is not in the quote
    folds = 3                # k-fold cross-validation (left out: one evaluation set)
    average = "binary"       # binary / micro / macro / weighted / any (not stated)
    classes = 2
    evaluation = "cross-validation"   # cross-validation / hold-out / external / challenge leaderboard
    unit = "patient"         # patient / image / unknown: what one case is
    trials_tried = 1
    notes = "..."

Unknown values are left out and stay unknown; the row says what cannot be judged without them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgmt_audit.analysis.claims.audit import ClaimResult, audit_claim
from mgmt_audit.analysis.claims.metrics import AUC, LABELS
from mgmt_audit.analysis.verdict import DEFAULT_MARGIN
from mgmt_audit.errors import AnalysisInputError

CLAIMS_DIR = Path(__file__).resolve().parents[3] / "data_manifests" / "claims"
EVALUATIONS = ("cross-validation", "hold-out", "external", "challenge leaderboard", "training")
UNITS = ("patient", "image", "unknown")
_KEYS = {"id", "study", "year", "marker", "cohort", "quoted_from", "metrics", "n", "n_pos", "n_neg",
         "class_sizes", "n_source", "folds", "average", "classes", "evaluation", "unit", "trials_tried", "notes"}


@dataclass(frozen=True)
class LiteratureClaim:
    """One published claim as recorded: what was printed, on what, how evaluated, quoted from where."""

    id: str
    paper: str
    file: str
    study: str
    year: int | None
    marker: str
    cohort: str
    quoted_from: str
    metrics: dict[str, str]
    evaluation: str
    unit: str
    n: int | None = None
    n_pos: int | None = None
    n_neg: int | None = None
    class_sizes: tuple[int, ...] | None = None
    n_source: str = ""
    folds: int | None = None
    average: str = "any"
    classes: int = 2
    trials_tried: int = 1
    notes: str = ""


@dataclass(frozen=True)
class LiteratureRow:
    """A claim, its audit and the flags a reader must see beside it."""

    claim: LiteratureClaim
    result: ClaimResult
    flags: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        return {"id": c.id, "study": c.study, "year": c.year, "marker": c.marker, "cohort": c.cohort,
                "paper": c.paper, "file": c.file, "quoted_from": c.quoted_from, "evaluation": c.evaluation,
                "unit": c.unit, "n_source": c.n_source or None, "notes": c.notes or None,
                **self.result.to_dict(), "literature_flags": list(self.flags)}


def load_claims(path: str | Path | None = None) -> list[LiteratureClaim]:
    """Every claim in a TOML file, or in every ``*.toml`` of a folder (default: ``CLAIMS_DIR``).

    Raises AnalysisInputError naming the file and key for a missing file, bad TOML, an unknown key, a
    missing required key, or an unknown evaluation or unit."""
    path = Path(path) if path is not None else CLAIMS_DIR
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise AnalysisInputError(f"no claims file at {path}: give a .toml file or a folder of them",
                                 parameter="literature")
    claims: list[LiteratureClaim] = []
    for file in files:
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise AnalysisInputError(f"{file}: not valid TOML ({exc})", parameter="literature") from exc
        paper = data.get("paper", {})
        for i, entry in enumerate(data.get("claim", [])):
            claims.append(_claim(file, i, paper, entry))
    ids = [c.id for c in claims]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise AnalysisInputError(f"{path}: claim ids used twice: {', '.join(dupes)}", parameter="literature")
    return claims


def _claim(file: Path, index: int, paper: dict[str, Any], entry: dict[str, Any]) -> LiteratureClaim:
    where = f"{file.name}, claim {entry.get('id', index + 1)}"
    unknown = set(entry) - _KEYS
    if unknown:
        raise AnalysisInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}", parameter="literature")
    for key in ("id", "study", "marker", "cohort", "quoted_from", "metrics", "evaluation", "unit"):
        if key not in entry:
            raise AnalysisInputError(f"{where}: missing key {key!r}", parameter="literature")
    if entry["evaluation"] not in EVALUATIONS or entry["unit"] not in UNITS:
        raise AnalysisInputError(f"{where}: evaluation must be one of {EVALUATIONS} and unit one of {UNITS}",
                                 parameter="literature")
    sizes = entry.get("class_sizes")
    return LiteratureClaim(
        id=entry["id"], paper=paper.get("title", ""), file=paper.get("file", ""), study=entry["study"],
        year=int(entry["year"]) if "year" in entry else None, marker=entry["marker"], cohort=entry["cohort"], quoted_from=entry["quoted_from"],
        metrics={k: str(v) for k, v in entry["metrics"].items()}, evaluation=entry["evaluation"],
        unit=entry["unit"], n=entry.get("n"), n_pos=entry.get("n_pos"), n_neg=entry.get("n_neg"),
        class_sizes=tuple(sizes) if sizes else None, n_source=entry.get("n_source", ""), folds=entry.get("folds"),
        average=entry.get("average", "any"), classes=int(entry.get("classes", 2)),
        trials_tried=int(entry.get("trials_tried", 1)), notes=entry.get("notes", ""),
    )


def literature_flags(claim: LiteratureClaim) -> tuple[str, ...]:
    """Design flags of a published claim: slice- or image-level evaluation (patients on both sides of
    the split likely), no external test, n unknown."""
    flags = []
    if claim.unit == "image":
        flags.append("image-level evaluation: slices of one patient likely on both sides of the split")
    elif claim.unit == "unknown":
        flags.append("unit of evaluation (patient or image) not stated")
    if claim.evaluation != "external":
        flags.append("no external test")
    if claim.n is None and claim.n_pos is None and claim.class_sizes is None:
        flags.append("n unknown")
    return tuple(flags)


def audit_literature(claims: list[LiteratureClaim], margin: float = DEFAULT_MARGIN) -> list[LiteratureRow]:
    """Audit every claim (:func:`.audit.audit_claim`) at ``margin``, with its design flags."""
    rows = []
    for c in claims:
        try:
            result = audit_claim(c.metrics, n_pos=c.n_pos, n_neg=c.n_neg,
                                 n=None if c.class_sizes else c.n, folds=c.folds, average=c.average,
                                 classes=c.classes, class_sizes=c.class_sizes, trials_tried=c.trials_tried,
                                 margin=margin)
        except AnalysisInputError as exc:
            raise AnalysisInputError(f"claim {c.id}: {exc}", parameter="literature") from exc
        rows.append(LiteratureRow(c, result, literature_flags(c)))
    return rows


def interval_text(result: ClaimResult) -> str:
    """The row's interval: the AUC's (reported, or implied by the operating point) or the accuracy's."""
    if result.ci_low is not None:
        what = "AUC" if AUC in result.inputs.metrics else "implied AUC"
        return f"{what} [{result.ci_low:.2f}, {result.ci_high:.2f}]"
    if result.accuracy is not None:
        return f"accuracy [{result.accuracy.ci_low:.2f}, {result.accuracy.ci_high:.2f}]"
    return "-"


def format_literature(rows: list[LiteratureRow]) -> str:
    """The literature table: one block per claim (claim, consistency, interval, verdict, flags)."""
    tri = {True: "yes", False: "NO", None: "-"}
    lines = [f"{len(rows)} published claims (margin {rows[0].result.inputs.margin:g}; 90% intervals; "
             "consistent = arithmetically possible, never proof of a sound evaluation)" if rows else "no claims"]
    for row in rows:
        c, r = row.claim, row.result
        printed = ", ".join(f"{LABELS[k].split(' (')[0]} {v.text}" for k, v in r.inputs.metrics.items())
        if r.inputs.n_pos is not None:
            size = f"{r.inputs.n_pos}/{r.inputs.n_neg}"
        elif r.inputs.class_sizes:
            size = "/".join(map(str, r.inputs.class_sizes))
        else:
            size = f"n={r.inputs.total}" if r.inputs.total else "n=?"
        design = f"{c.folds}-fold CV" if c.folds else c.evaluation
        lines += ["", f"{c.id}  {c.study}{f' ({c.year})' if c.year else ''} · {c.marker} · {printed} · {size} · {design}, {c.unit}-level",
                  f"  consistent {tri[r.consistent]} · {interval_text(r)} · verdict {r.verdict}"
                  + (f" ({r.metric_judged.split(' (')[0]})" if r.ci_low is not None else ""),
                  f"  why: {r.reason}"]
        flags = [*row.flags, *r.flags]
        if flags:
            lines.append("  flags: " + "; ".join(flags))
    return "\n".join(lines)
