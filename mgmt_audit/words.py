"""Counted nouns for messages and reports: "1 patient", "2 patients", "1 matrix", "1.5 units"."""

from __future__ import annotations

_IRREGULAR = {"matrix": "matrices", "modality": "modalities", "analysis": "analyses"}


def counted(n: float, noun: str, plural: str | None = None, *, fmt: str = "g") -> str:
    """``n`` with ``noun`` in the singular when ``n`` is exactly 1, else in the plural (``plural``, an
    irregular one this module knows, or ``noun + "s"``); ``fmt`` formats ``n`` (e.g. ".3g"), and the
    number as printed decides (1.0000001 printed "1" is one)."""
    many = plural or _IRREGULAR.get(noun, noun + "s")
    text = f"{n:{fmt}}"
    return f"{text} {noun if text == '1' else many}"
