#!/usr/bin/env bash
# Compiles every CUDA kernel source for sm_80 and sm_90 with ptxas' resource report, fails on any
# warning or register spill, and writes a table (kernel, arch, registers, shared memory, spills)
# to OUT/ptxas.md plus the raw reports to OUT/raw/. Usage: scripts/ptxas_report.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/ptxas}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$nvcc" ]; then
  echo "ptxas_report: no nvcc found: skipped"
  exit 0
fi
mkdir -p "$out/raw"
table="$out/ptxas.md"
{
  echo "| kernel | arch | registers | shared memory (bytes) | spill stores / loads (bytes) |"
  echo "|---|---|---|---|---|"
} >"$table"
for source in kernels/cuda/*.cu; do
  name=$(basename "$source" .cu)
  for arch in 80 90; do
    raw="$out/raw/${name}.sm_${arch}.txt"
    "$nvcc" -std=c++20 -O3 -arch=sm_${arch} --Werror all-warnings -Xptxas=-v,-warn-spills,-Werror \
      -I. -c "$source" -o "$out/raw/${name}.sm_${arch}.o" 2>"$raw" || { cat "$raw"; exit 1; }
    # ptxas prints, per entry function: its name, a frame/spill line, then a registers/smem line.
    awk -v arch="sm_${arch}" '
      /Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); fn = substr($0, RSTART + 1, RLENGTH - 2) }
      /spill stores/ { split($0, a, ","); stores = a[2]; loads = a[3]; gsub(/[^0-9]/, "", stores); gsub(/[^0-9]/, "", loads) }
      /Used [0-9]+ registers/ {
        regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
        smem = 0; if (match($0, /[0-9]+ bytes smem/)) { smem = substr($0, RSTART, RLENGTH); sub(/ bytes smem/, "", smem) }
        if (fn != "") print fn "\t" arch "\t" regs "\t" smem "\t" stores " / " loads
        fn = ""
      }' "$raw"
  done
done | sort -u | while IFS=$'\t' read -r fn arch regs smem spills; do
  # Demangled, without the return type, namespaces and argument list: "conv_tile_kernel<64, 64>".
  name=$(echo "$fn" | c++filt | sed -e 's/^void //' -e 's/(anonymous namespace):://g' -e 's/unet::cuda:://' -e 's/\(.*\)(.*)$/\1/')
  echo "| \`$name\` | $arch | $regs | $smem | $spills |"
done >>"$table"
echo "ptxas report: $table"
