#!/usr/bin/env bash
# Configures and builds the project into build/ (Release). Extra arguments go to CMake's
# configure step, e.g. scripts/build.sh -DUNET_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs"
