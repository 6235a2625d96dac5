"""Printed numbers: fractions and percentages parse alike, with the interval their digits stand for."""

import pytest

from mgmt_audit.analysis.reported import parse_proportion
from mgmt_audit.errors import AnalysisInputError


@pytest.mark.parametrize("text", ["0.59", ".59", "59%", "59 %", " 59% "])
def test_fractions_and_percentages_parse_alike(text):
    number = parse_proportion(text)
    assert number.value == 0.59 and number.decimals == 2
    assert number.rounded == pytest.approx((0.585, 0.595))
    assert number.truncated == pytest.approx((0.59, 0.60))


def test_precision_follows_the_digits_given():
    assert parse_proportion("96.31%").rounded == pytest.approx((0.96305, 0.96315))
    assert parse_proportion("0.6").rounded == pytest.approx((0.55, 0.65))
    assert parse_proportion("1.0").rounded == pytest.approx((0.95, 1.0))  # clipped to [0, 1]
    assert parse_proportion(0.59).value == 0.59


@pytest.mark.parametrize("text, message", [("83", "not a proportion"), ("abc", "not a number"),
                                           ("120%", "not a proportion"), ("-0.2", "not a number")])
def test_bad_numbers_are_refused_with_the_fix(text, message):
    with pytest.raises(AnalysisInputError, match=message):
        parse_proportion(text, "an AUC")


def test_rounded_and_truncated_intervals_decide_membership_exactly():
    sens = parse_proportion("96.31%")
    assert sens.contains(157 / 163, "truncated") and not sens.contains(157 / 163, "rounded")  # 96.319 %
    assert sens.miss(157 / 163, "rounded") == pytest.approx((157 / 163 - 0.96315) / 1e-4)
    assert sens.miss(157 / 163, "truncated") == 0.0
    half = parse_proportion("0.5")
    assert half.contains(0.55, "rounded") and not half.contains(0.6, "truncated")  # [0.5, 0.6) is half-open
    assert half.contains(0.5999, "truncated") and not half.contains(float("nan"), "rounded")
    assert half.miss(float("nan"), "rounded") == float("inf")
    with pytest.raises(AnalysisInputError, match="convention"):
        half.interval("floor")


def test_a_truncated_number_below_one_never_stands_for_one():
    """Found by a newcomer: `audit-claim --accuracy 0.9 --n-pos 5 --n-neg 5` let TP 5 TN 5 (accuracy
    1.0) fit "0.9" truncated; 1.0 truncated prints "1.0"."""
    from mgmt_audit.analysis.claims import audit_claim

    assert not parse_proportion("0.9").contains(1.0, "truncated")
    assert parse_proportion("0.9").contains(0.99, "truncated")
    assert parse_proportion("1.0").contains(1.0, "truncated") and parse_proportion("100%").contains(1.0, "truncated")
    fits = audit_claim({"accuracy": "0.9"}, n_pos=5, n_neg=5).consistency
    assert all(not ((m.tp, m.tn) == (5, 5)) for c in fits.checks if c.status == "fits" for m in c.matrices())
