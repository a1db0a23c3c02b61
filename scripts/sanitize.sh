#!/usr/bin/env bash
# Builds the CUDA emulation layer, the handwritten CUDA kernels (emulated) and the CPU kernels
# with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/, and runs their tests,
# including the test table of every CPU kernel variant (AVX2 and, where the CPU has it, AVX-512).
# The emulator's fibers use ucontext here: the sanitizers understand its stack switches.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# GCC 12 under ASan reports a false -Wmaybe-uninitialized inside libstdc++ <regex> (Catch2).
cxx_flags="$flags -Wno-maybe-uninitialized"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUNET_CUDA=OFF -DUNET_EMU_UCONTEXT=ON \
  -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build build-asan -j "$(nproc 2>/dev/null || echo 2)" --target test_kernels test_emu test_cuda_emu test_backend_emu test_bench
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -R '^test_(kernels|emu|cuda_emu|backend_emu):|^test_bench:.*variant'
