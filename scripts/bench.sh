#!/usr/bin/env bash
# Sets up, builds, and runs a benchmark; the JSON of the run goes to bench-results/<name>.json.
#   scripts/bench.sh kernels [flags]  every kernel on the reference model's shapes (bench/bench_kernels.cpp)
#   scripts/bench.sh e2e [flags]      training step and inference at batch 1, 6, 16 (bench/bench_e2e.cpp)
# Flags go to the benchmark: --threads=N, --tiny, and Google Benchmark's own, e.g.
#   scripts/bench.sh kernels --benchmark_filter='cpu/conv2d'
# On a machine shared with other work, OMP_WAIT_POLICY=passive keeps OpenMP threads from spinning
# against the other programs (see docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  kernels) binary=bench_kernels ;;
  e2e) binary=bench_e2e ;;
  *) echo "usage: scripts/bench.sh kernels|e2e [benchmark flags]" >&2; exit 2 ;;
esac
name=$1
shift
bash scripts/build.sh
mkdir -p bench-results
"build/bench/$binary" --benchmark_out="bench-results/$name.json" --benchmark_out_format=json "$@"
echo "JSON: bench-results/$name.json"
