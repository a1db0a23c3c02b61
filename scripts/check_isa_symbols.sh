#!/usr/bin/env bash
# The AVX-512 kernel variants are compiled into every binary and only run where CPUID allows. If
# a file compiled with AVX-512 flags emitted an out-of-line copy of an inline function or template
# that other files also use (a std::vector member, a helper not templated on the instruction set),
# the linker could keep that copy for everyone, and an AVX2-only CPU would crash with SIGILL
# far from any AVX-512 kernel. This check fails when an AVX-512 object defines a shared (weak or
# unique) symbol that does not name simd::Avx512 in its signature.
#   scripts/check_isa_symbols.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
objects=$(find "$build/kernels" -name '*avx512*.o')
[ -n "$objects" ] || { echo "check_isa_symbols: no AVX-512 objects under $build/kernels (build first)"; exit 1; }
status=0
for o in $objects; do
  shared=$(nm -C --defined-only "$o" | awk '$2 ~ /^[WVu]$/' | grep -v 'simd::Avx512' | grep -v 'DW.ref.__gxx_personality_v0' || true)
  if [ -n "$shared" ]; then
    echo "check_isa_symbols: $o defines shared symbols compiled for AVX-512 that other files may use:"
    echo "$shared"
    status=1
  fi
done
[ $status -eq 0 ] && echo "check_isa_symbols: AVX-512 objects share no symbol with the rest of the binary"
exit $status
