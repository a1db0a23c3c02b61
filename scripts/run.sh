#!/usr/bin/env bash
# Sets everything up, builds, and runs the main job on built-in data: a short training run of a
# U-Net on generated phantom MRI slices, printing the loss as it falls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p runs
build/tools/unet summary | tail -n 4
build/tools/unet train --out runs/quickstart.ckpt "$@"
