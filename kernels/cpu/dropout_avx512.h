// Dropout forward with Philox on 16 counters per AVX-512 register: the philox_avx512 variant of
// dropout_forward. The mask is kernels/cpu/dropout.h's, bit for bit (the variant test table
// compares every mask byte), and so is y.
#pragma once

#include <cstddef>
#include <cstdint>

namespace unet::cpu {

void dropout_forward_avx512(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x, float* y,
                            uint8_t* mask);

}  // namespace unet::cpu
