#!/usr/bin/env bash
# Sets everything up, builds, and runs the whole test suite. Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
# Serial on purpose: each test already uses every core through OpenMP, and two OpenMP programs
# spinning on the same cores run ten times slower than one after the other.
ctest --test-dir build --output-on-failure
