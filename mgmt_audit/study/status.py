"""The per-trial table of ``study status``: one plain dict per trial, JSON-ready."""

from __future__ import annotations

from typing import Any


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One dict per trial: number, state (Optuna's name), seed, params, val_auc, null, artifacts,
    config_id and (when it failed) the error."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        row = {
            "number": trial.number,
            "state": trial.state.name,
            "seed": attrs.get("seed"),
            "params": dict(trial.params),
            "val_auc": attrs.get("val_auc", trial.value),
            "null": bool(attrs.get("null", False)),
            "artifacts": attrs.get("artifacts"),
            "config_id": attrs.get("config_id"),
        }
        if "error" in attrs or "duplicate_of" in attrs:
            row["note"] = attrs.get("error") or f"duplicate of configuration {attrs['duplicate_of']}"
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """A readable table: a summary line from ``header`` (study attributes), then one line per trial."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    lines = [
        f"study {header.get('spec_name')} profile={header.get('profile')} sampler={header.get('sampler')} "
        f"optuna={header.get('optuna_version')} spec_hash={header.get('spec_hash')}",
        "trials: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"),
        f"{'#':>4} {'state':<9} {'seed':>5} {'null':<5} {'val_auc':>7}  {'config':<12} params",
    ]
    for row in rows:
        auc = "" if row["val_auc"] is None else f"{row['val_auc']:.3f}"
        params = " ".join(f"{k}={v}" for k, v in row["params"].items())
        seed = "" if row["seed"] is None else row["seed"]
        lines.append(
            f"{row['number']:>4} {row['state']:<9} {seed!s:>5} {'yes' if row['null'] else '':<5} "
            f"{auc:>7}  {row['config_id'] or '':<12} {params}{'  # ' + row['note'] if 'note' in row else ''}"
        )
    return "\n".join(lines)
