#include "kernels/cpu/isa.h"

#include <cstdlib>
#include <cstring>

namespace unet::cpu {

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "any";
    case Isa::Avx2: return "avx2+fma";
    case Isa::Avx512: return "avx512f/bw/vl";
  }
  return "unknown";
}

bool isa_available(Isa isa) {
  // __builtin_cpu_supports also checks that the OS saves the wider register state (XGETBV).
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  static const bool capped = [] {
    const char* env = std::getenv("UNET_ISA");
    return env && std::strcmp(env, "avx2") == 0;
  }();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return avx2;
    case Isa::Avx512: return avx512 && !capped;
  }
  return false;
}

}  // namespace unet::cpu
