"""Check the DeLong statistics against pROC's own expected values on its aSAH data set.

pROC (Robin et al. 2011) ships the aSAH data (113 patients, outcome Good / Poor, markers wfns, s100b,
ndka) and, in its test suite (tests/testthat/test-var.R, test-cov.R, test-ci.auc.R), the variances,
covariances and confidence interval it computes on them. This script reads the data file you give
(``data/aSAH.RData`` of a pROC checkout; it is not shipped with mgmt-audit) with ``pyreadr`` and prints
mgmt-audit's numbers beside pROC's, with their ratio.

    pip install pyreadr
    python benchmarks/reference_proc.py PATH/TO/aSAH.RData
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from mgmt_audit.analysis.auc import delong_ci, delong_covariance

# pROC's expected values (tests/testthat of pROC, commit ee2877e8), direction "<" (controls < cases)
PROC_VAR = {"wfns": 0.00146991470882363, "ndka": 0.0031908105493913, "s100b": 0.00266868245717244}
PROC_COV = {("wfns", "ndka"): -0.000532967856762438, ("ndka", "s100b"): -0.000756164938056579,
            ("s100b", "wfns"): 0.00119615567376754}
PROC_CI_NDKA = (0.501244999271703, 0.611957994579946, 0.722670989888189)  # ci.auc(r.ndka), DeLong 95%


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rdata", help="pROC's data/aSAH.RData")
    args = parser.parse_args(argv)
    import pyreadr

    frame = pyreadr.read_r(args.rdata)["aSAH"]
    y = (frame["outcome"].astype(str) == "Poor").astype(int).to_numpy()
    markers = {name: frame[name].astype(float).to_numpy() for name in ("wfns", "s100b", "ndka")}
    names = list(markers)
    aucs, cov = delong_covariance(y, np.vstack([markers[n] for n in names]))
    rows = [(f"var {n}", cov[i, i], PROC_VAR[n]) for i, n in enumerate(names)]
    for (a, b), expected in PROC_COV.items():
        rows.append((f"cov {a},{b}", cov[names.index(a), names.index(b)], expected))
    auc, low, high = delong_ci(y, markers["ndka"])
    rows += [("ci ndka low", low, PROC_CI_NDKA[0]), ("auc ndka", auc, PROC_CI_NDKA[1]),
             ("ci ndka high", high, PROC_CI_NDKA[2])]
    print(f"{'statistic':<16}{'mgmt-audit':>24}{'pROC':>24}{'ratio':>14}")
    worst = 0.0
    for name, ours, theirs in rows:
        worst = max(worst, abs(ours - theirs) / abs(theirs))
        print(f"{name:<16}{ours:>24.15g}{theirs:>24.15g}{ours / theirs:>14.9f}")
    print(f"largest relative difference: {worst:.2e}")
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
