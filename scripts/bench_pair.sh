#!/usr/bin/env bash
# A/B of two stylegraph binaries on a noisy 2-core machine: both run at the same time, one
# thread each, pinned to different cores (then swapped), so they share the same tenant load and
# memory traffic. Prints each run's fastest image time and the per-stage sums of the layer
# breakdown (SG3 networks: weights / input transform / GEMM / output transform / filter, ms).
#
#   scripts/bench_pair.sh BIN_A BIN_B [NETWORK] [ROUNDS]
#   e.g. scripts/bench_pair.sh /tmp/stylegraph-before target/release/stylegraph stylegan3-t-256 4
set -euo pipefail
a=${1:?binary A}
b=${2:?binary B}
net=${3:-stylegan3-t-256}
rounds=${4:-4}
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
summary() {
    python3 - "$1" "$net" <<'PY'
import sys
path, net = sys.argv[1], sys.argv[2]
tot = [0.0] * 5
fastest = "?"
for line in open(path):
    p = line.split()
    if p and p[0] == net and len(p) > 5:
        fastest = p[5]
    if "/" in p and p[0].startswith("L"):
        i = p.index("/")
        for k, j in enumerate((i - 1, i + 1, i + 3, i + 5, i + 7)):
            tot[k] += float(p[j])
print("fastest %s s  weights %.0f  in %.0f  gemm %.0f  out %.0f  filter %.0f" % (fastest, *tot))
PY
}
for r in $(seq "$rounds"); do
    if (( r % 2 )); then ca=0; cb=1; else ca=1; cb=0; fi
    taskset -c "$ca" "$a" --threads 1 bench --networks "$net" --runs 3 >"$tmp/a" 2>/dev/null &
    taskset -c "$cb" "$b" --threads 1 bench --networks "$net" --runs 3 >"$tmp/b" 2>/dev/null &
    wait
    echo "round $r  A (cpu $ca): $(summary "$tmp/a")"
    echo "round $r  B (cpu $cb): $(summary "$tmp/b")"
done
