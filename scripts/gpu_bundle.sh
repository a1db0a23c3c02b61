#!/usr/bin/env bash
# Prepares what a lent GPU machine needs to run scripts/gpu_check.sh: builds the CUDA binaries here
# with nvcc (sm_80 and sm_90) and packs them, with every shared library they need that such a
# machine lacks, into .gpu-bundle/ (ignored by git; it travels in the device command's `carry`
# list): bin/, lib/, and lib-cxx/ (libstdc++ and libgcc_s, which gpu_check.sh puts on the path
# only when the machine's glibc can load them). Not packed, and found there instead by scripts/gpu_check.sh: glibc, the driver's
# libcuda, and cuDNN (libcudnn*.so.9, hundreds of MB: the machine's own, from PyTorch's
# nvidia-cudnn wheel or a system copy). docs/GPU.md describes the bundle and its risks.
#
# Usage: scripts/gpu_bundle.sh [BUILD_DIR]
#   BUILD_DIR: a CMake build folder to build the five binaries in (default build-gpu-bundle). A new
#   folder is configured with CUDA for sm_80 and sm_90; an existing one is used as configured and
#   must have CUDA (CI passes `build`, which scripts/test.sh has built). JOBS=N sets the parallel
#   build jobs (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu-bundle}
bundle=.gpu-bundle
limit_mib=64
targets=(unet bench_kernels bench_e2e test_cuda test_backend)

nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
if [ ! -x "$nvcc" ]; then
  echo "gpu_bundle: no nvcc (looked on PATH and at /usr/local/cuda/bin/nvcc): the CUDA binaries cannot be built here" >&2
  exit 1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "gpu_bundle: configuring $build (CUDA on, sm_80 and sm_90)"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DUNET_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null
elif ! grep -q '^CMAKE_CUDA_COMPILER:.*nvcc' "$build/CMakeCache.txt"; then
  echo "gpu_bundle: $build is configured without CUDA; pass a CUDA build folder or a new one" >&2
  exit 1
fi
echo "gpu_bundle: building in $build: ${targets[*]}"
cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]}"

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/lib-cxx"
binaries=("$build/tools/unet" "$build/bench/bench_kernels" "$build/bench/bench_e2e"
          "$build/tests/test_cuda" "$build/tests/test_backend")
for b in "${binaries[@]}"; do
  cp "$b" "$bundle/bin/"
done

# Every library ldd resolves, except those the GPU machine must provide itself. The same list of
# provided names is what gpu_check.sh's audit accepts from outside the bundle.
provided='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libresolv|libcuda|libcudnn(_[a-z_]+)?)\.so'
for b in "$bundle"/bin/*; do
  ldd "$b" | awk '/=> \// { print $1, $3 }'
done | sort -u | while read -r name path; do
  if [[ "$name" =~ $provided ]]; then
    continue
  elif [[ "$name" =~ ^(libstdc\+\+|libgcc_s)\.so ]]; then
    cp -L "$path" "$bundle/lib-cxx/$name"
  else
    cp -L "$path" "$bundle/lib/$name"
  fi
done

# Newest glibc symbol version the files need: the GPU machine's glibc must be at least `glibc`
# for bin/ and lib/, and at least `glibc_cxx` to load lib-cxx/ (otherwise its own libstdc++ must
# have every GLIBCXX version the binaries need).
newest_glibc() {
  objdump -T "$@" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}
glibc=$(newest_glibc "$bundle"/bin/* "$bundle"/lib/*)
glibc_cxx=$(newest_glibc "$bundle"/lib-cxx/*)
cudnn_h=$(dirname "$nvcc")/../include/cudnn_version.h
[ -f "$cudnn_h" ] || cudnn_h=/usr/include/cudnn_version.h
cudnn_built=$(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / { v = v (v ? "." : "") $3 } END { print v }' "$cudnn_h" 2>/dev/null || true)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit+changes"
fi
{
  echo "commit=$commit"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "nvcc=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
  echo "cuda_archs=80;90"
  echo "cudnn_built_against=${cudnn_built:-unknown}"
  echo "glibc_required=$glibc"
  echo "glibc_required_by_lib_cxx=$glibc_cxx"
  echo "binaries=$(cd "$bundle/bin" && echo *)"
  echo "libraries=$(cd "$bundle/lib" && echo *) $(cd "$bundle/lib-cxx" && echo *)"
} >"$bundle/manifest.txt"

size=$(du -sb "$bundle" | cut -f1)
echo "gpu_bundle: $bundle: $(echo "$bundle"/bin/* | wc -w) binaries, $(echo "$bundle"/lib*/* | wc -w) libraries," \
  "$((size / 1024 / 1024)) MiB (limit $limit_mib MiB with the working tree); needs glibc >= $glibc" \
  "(>= $glibc_cxx for its libstdc++, else the machine's own)"
if [ "$size" -ge $((limit_mib * 1024 * 1024)) ]; then
  echo "gpu_bundle: $bundle is over the $limit_mib MiB a device command may carry" >&2
  exit 1
fi
