#!/usr/bin/env bash
# The new families on phantom cohorts with and without a planted signal, judged by the report
# (AUC on the held-out test patients with its interval, p-value and verdict at margin 0.65):
#   geometry_eval (geometry_sweep's arms cnn, gnn, cnn+gnn) on shape K = 1 (S = 0) and on S = 0, K = 0;
#   ssl_eval (scratch, SimCLR, BYOL, DINO, MoCo v3) and transfer_eval (MobileNetV2, ResNet101; scratch,
#   SimCLR) on the intensity signal S = 1 and on S = 0 (transfer_eval reads ssl_eval's phantoms).
# The specs here are the studies' smoke profiles at 240 patients (96 test), more epochs and seeds.
#     bash benchmarks/phantom_families/run.sh OUT [geometry] [ssl] [transfer]
# About 25 minutes on 2 CPU cores. Prints each command, its trial counts and each configuration's line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1; shift
mgmt=${MGMT_AUDIT:-mgmt-audit}
mkdir -p "$out"
run() {  # spec runs_dir source-arguments...
    local spec=$here/$1 dir=$out/$2; shift 2
    echo "+ mgmt-audit study run $spec $* --runs-dir $dir --device cpu"
    "$mgmt" study run "$spec" "$@" --runs-dir "$dir" --device cpu > "$dir.log" 2>&1 \
        || { tail -5 "$dir.log"; return 1; }
    tail -1 "$dir.log"
    echo "+ mgmt-audit report $spec --runs-dir $dir --out $dir/report"
    "$mgmt" report "$spec" --runs-dir "$dir" --out "$dir/report" > "$dir.report.log"
    python3 - "$dir/report/summary.json" <<'PY'
import json, sys
for c in json.load(open(sys.argv[1]))["configurations"]:
    print(f"  {c['configuration']:<50} AUC {c['auc']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]"
          f" p {c['p_value']:.2g} {c['verdict']}")
PY
}
for what in "$@"; do
    case $what in
    geometry)
        run geometry_eval.toml geometry-S0-K1 --phantom 0 --shape 1
        run geometry_eval.toml geometry-S0-K0 --phantom 0 ;;
    ssl)
        for s in 1 0; do run ssl_eval.toml ssl-S$s --phantom $s; done ;;
    transfer)
        for s in 1 0; do run transfer_eval.toml transfer-S$s --data "$out/ssl-S$s/ssl_eval/phantom-S$s/raw"; done ;;
    *) echo "unknown part $what: geometry, ssl or transfer"; exit 2 ;;
    esac
done
