#!/usr/bin/env bash
# The main job on built-in data, from a fresh machine: set up and build, then
#   generate  synthetic phantom MRI slices with tumour masks (data/phantom, .npy pairs)
#   train     a U-Net on them, 80/20 split by patient (runs/quickstart)
#   eval      the best checkpoint on the held-out patients (runs/quickstart/eval)
#   predict   masks and overlays for new .npy slices (runs/quickstart/predict)
# Sized to finish in a few minutes on 2 cores: 128x128 inputs and 8 base filters (the reference
# model is --size 240 --base-filters 16, the defaults of `unet train`). Extra arguments go to
# `unet train`, e.g. scripts/run.sh --epochs 40.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
unet=build/tools/unet
run=runs/quickstart
size=128

"$unet" synth --out data/phantom --patients 20 --slices 8 --size 240
"$unet" train --data data/phantom --size "$size" --base-filters 8 --epochs 30 --batch 8 --out "$run" "$@"
"$unet" eval --checkpoint "$run/best.ckpt" --data data/phantom --split "$run/split.txt" --subset val \
  --size "$size" --out "$run/eval"
# Two held-out slices as "new" inputs, as the reference work predicted on new .npy slices.
val_patient=$(sed -n '/^val:/,$p' "$run/split.txt" | sed -n '2p')
for k in 03 05; do
  "$unet" predict --checkpoint "$run/best.ckpt" --input "data/phantom/images/${val_patient}_slice_${k}.npy" \
    --truth "data/phantom/masks/${val_patient}_slice_${k}.npy" --size "$size" --out "$run/predict"
done
echo
echo "curves:   $run/curves.png (loss, Dice, learning rate per epoch; log in $run/log.csv)"
echo "scores:   $run/eval/per_patient.csv, $run/eval/summary.json"
echo "overlays: $run/eval/overlays/ and $run/predict/*_overlay.png"
