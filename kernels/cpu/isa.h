// Which vector instruction sets this CPU runs, asked of CPUID once. The AVX2 and AVX-512 kernel
// variants are compiled into every binary; these answers decide which of them may run here.
#pragma once

namespace unet::cpu {

enum class Isa { Scalar, Avx2, Avx512 };

const char* to_string(Isa isa);  // "any", "avx2+fma", "avx512f/bw/vl"

// True when this CPU (and the OS, for the register state) supports `isa`. UNET_ISA=avx2 in the
// environment caps the answer at AVX2, so AVX-512 machines can test the AVX2 path by default too.
bool isa_available(Isa isa);

}  // namespace unet::cpu
