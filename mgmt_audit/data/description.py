"""Dataset descriptions (``data_manifests/<name>.toml``) and the labels CSV.

A description states a published dataset as it is: layout, modalities, label columns, expected
counts, the cases its organisers flagged (with the reason) and the default split seed.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mgmt_audit.errors import CohortError

DESCRIPTIONS_DIR = Path(__file__).resolve().parents[2] / "data_manifests"


@dataclass(frozen=True)
class DatasetDescription:
    """What a published dataset should look like, and what its organisers said to leave out."""

    name: str
    modalities: tuple[str, ...]
    id_column: str = "BraTS21ID"
    label_column: str = "MGMT_value"
    cases: int | None = None
    positive: int | None = None
    negative: int | None = None
    split_seed: int = 42
    exclude_flagged: bool = True
    flagged: dict[str, str] = field(default_factory=dict)  # patient id -> reason


def load_dataset_description(name: str | Path) -> DatasetDescription:
    """Load ``data_manifests/<name>.toml`` (or a TOML path) into a :class:`DatasetDescription`."""
    path = Path(name)
    if path.suffix != ".toml":
        path = DESCRIPTIONS_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in DESCRIPTIONS_DIR.glob("*.toml"))
        raise CohortError(
            f"no dataset description {path}: pass --dataset with one of {known}, a .toml path, or 'none'"
        )
    try:
        data = tomllib.loads(path.read_text())
        labels = data.get("labels", {})
        return DatasetDescription(
            name=data["name"],
            modalities=tuple(data["layout"]["modalities"]),
            id_column=labels.get("id_column", "BraTS21ID"),
            label_column=labels.get("label_column", "MGMT_value"),
            cases=labels.get("cases"),
            positive=labels.get("positive"),
            negative=labels.get("negative"),
            split_seed=int(data.get("split_seed", 42)),
            exclude_flagged=bool(data.get("exclude_flagged", True)),
            flagged={f"{int(f['id']):05d}": f["reason"] for f in data.get("flagged", [])},
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CohortError(f"{path} is not a valid dataset description ({exc!r}): fix the file") from exc


def patient_id(value: str | int) -> str:
    """The 5-digit, zero-padded form of a BraTS21 ID ("109", 109 or "00109" -> "00109")."""
    text = str(value).strip()
    if not text.isdigit() or len(text) > 5:
        raise ValueError(f"{value!r} is not a BraTS21 ID (up to 5 digits)")
    return f"{int(text):05d}"


@dataclass(frozen=True)
class LabelTable:
    """A labels CSV read: ``{5-digit id: 0|1}`` and the IDs whose label cell is empty (unlabelled)."""

    labels: dict[str, int]
    unlabelled: tuple[str, ...] = ()


def read_labels(path: str | Path, id_column: str = "BraTS21ID", label_column: str = "MGMT_value") -> LabelTable:
    """Read a labels CSV into a :class:`LabelTable`.

    Accepts what spreadsheets and pandas write: a UTF-8 byte-order mark, CRLF line ends, labels
    ``0``/``1`` or ``0.0``/``1.0``; an empty label cell makes the patient unlabelled (recorded in
    ``unlabelled``), like an absent row. Raises CohortError naming the file and line for a missing
    column, a bad ID or label, an ID on two lines (both line numbers), or a file with no row.
    """
    path = Path(path)
    if not path.is_file():
        raise CohortError(f"labels file {path} not found: pass the labels CSV ({id_column},{label_column})")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = [f.strip() for f in reader.fieldnames or []]
        reader.fieldnames = fields
        missing = {id_column, label_column} - set(fields)
        if missing:
            raise CohortError(
                f"{path} lacks column(s) {sorted(missing)} (has {fields}): "
                f"the labels CSV needs the header {id_column},{label_column}"
            )
        labels: dict[str, int] = {}
        unlabelled: list[str] = []
        seen: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            try:
                pid = patient_id(row[id_column])
            except (TypeError, ValueError) as exc:
                raise CohortError(f"{path} line {line}: {exc}; fix or remove the row") from exc
            if pid in seen:
                raise CohortError(
                    f"{path}: patient {pid} is on line {seen[pid]} and on line {line}; keep one row per patient"
                )
            seen[pid] = line
            cell = (row[label_column] or "").strip()
            if not cell:
                unlabelled.append(pid)
                continue
            labels[pid] = _label(cell, path, line)
    if not labels and not unlabelled:
        raise CohortError(f"{path} has no rows: give the labels CSV of the cohort")
    return LabelTable(labels, tuple(unlabelled))


def _label(cell: str, path: Path, line: int) -> int:
    """0 or 1 from ``0``, ``1``, ``0.0``, ``1.0`` (what pandas writes for a float column)."""
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if value not in (0.0, 1.0):
        raise CohortError(f"{path} line {line}: label {cell!r} is not 0 or 1; fix the row")
    return int(value)
