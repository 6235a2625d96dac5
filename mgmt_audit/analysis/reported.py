"""Numbers as a paper prints them: "0.59", "59%", "96.31 %". A printed number stands for an interval
of true values: rounded to its last digit, "0.59" is anything in [0.585, 0.595]; truncated, anything in
[0.59, 0.60). Verdicts on a printed number are judged at both ends of that interval; consistency checks
(:mod:`mgmt_audit.analysis.claims`) ask whether a count ratio falls inside it under either convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mgmt_audit.errors import AnalysisInputError

ROUNDED, TRUNCATED = "rounded", "truncated"
CONVENTIONS = (ROUNDED, TRUNCATED)
# slack on the interval ends for floating-point ratios of counts: far below any printed digit, and
# far below the gap between distinct ratios of counts up to 10**6 (>= 1e-12)
_EPS = 1e-13

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(%?)\s*$")


@dataclass(frozen=True)
class PrintedNumber:
    """A printed proportion as a fraction in [0, 1] with the interval its digits stand for.

    ``decimals`` counts the digits after the point of the fraction (a percentage's digits + 2), so
    "59%" and "0.59" both have 2. ``rounded`` is [value - u/2, value + u/2] and ``truncated``
    [value, value + u), u = 10**-decimals, each clipped to [0, 1].
    """

    text: str
    value: float
    decimals: int
    percent: bool

    @property
    def unit(self) -> float:
        return 10.0 ** -self.decimals

    @property
    def rounded(self) -> tuple[float, float]:
        return max(self.value - self.unit / 2, 0.0), min(self.value + self.unit / 2, 1.0)

    @property
    def truncated(self) -> tuple[float, float]:
        return self.value, min(self.value + self.unit, 1.0)

    def interval(self, convention: str) -> tuple[float, float]:
        """[low, high] for ``ROUNDED`` (closed) or [low, high) for ``TRUNCATED`` (open at its top even
        when that is 1.0: 1.0 truncates to "1.0", never to "0.9"; only a printed 1.0 is [1.0, 1.0]).

        Raises AnalysisInputError for another convention."""
        if convention == ROUNDED:
            return self.rounded
        if convention == TRUNCATED:
            return self.truncated
        raise AnalysisInputError(f"convention must be one of {CONVENTIONS}, got {convention!r}",
                                 parameter="convention")

    def contains(self, values: np.ndarray | float, convention: str) -> np.ndarray:
        """Whether each of ``values`` prints as this number under ``convention`` (NaN never does)."""
        low, high = self.interval(convention)
        values = np.asarray(values, dtype=float)
        inside = values >= low - _EPS
        if convention == TRUNCATED and self.value < 1.0:
            return inside & (values < high - _EPS)
        return inside & (values <= high + _EPS)

    def miss(self, values: np.ndarray | float, convention: str) -> np.ndarray:
        """How far each of ``values`` lies outside the interval, in units of the last printed digit
        (0 inside; infinite for NaN, an undefined ratio)."""
        low, high = self.interval(convention)
        values = np.asarray(values, dtype=float)
        gap = np.maximum(np.maximum(low - values, values - high), 0.0) / self.unit
        gap = np.where(self.contains(values, convention), 0.0, np.maximum(gap, 1e-9))
        return np.where(np.isnan(values), np.inf, gap)


def parse_proportion(text: str | float, name: str = "value", parameter: str | None = None) -> PrintedNumber:
    """Parse "0.59", ".59", "59%" or "59 %" (a float is taken as printed by ``repr``).

    Raises AnalysisInputError naming ``name`` (and carrying ``parameter``, the caller's argument)
    when the text is not a number, or the proportion lies outside [0, 1] (e.g. "83" without a percent
    sign: write "83%" or "0.83").
    """
    raw = repr(float(text)) if isinstance(text, (int, float)) else str(text)
    match = _NUMBER.match(raw)
    if match is None:
        raise AnalysisInputError(
            f"{name} {raw!r} is not a number: write it as printed, e.g. 0.59 or 59%", parameter=parameter
        )
    digits, percent = match.group(1), match.group(2) == "%"
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    value = float(digits)
    if percent:
        value, decimals = value / 100.0, decimals + 2
    if not 0.0 <= value <= 1.0:
        if percent or value > 100:
            fix = "a proportion cannot exceed 1, nor a percentage 100%"
        else:
            fix = f"if it was printed as a percentage, write its sign ({digits}%, i.e. {value / 100:g})"
        raise AnalysisInputError(f"{name} {raw!r} is not a proportion in [0, 1]: {fix}", parameter=parameter)
    return PrintedNumber(raw.strip(), round(value, decimals + 2), decimals, percent)
