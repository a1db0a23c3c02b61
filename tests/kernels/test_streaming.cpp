// Streaming stores (kernels/cpu/streaming.h) change how outputs reach memory, never their values:
// every kernel that streams gives the same bits with streaming forced on for every size as with it
// off, at output addresses aligned and not, on lengths that end inside a vector.
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/batchnorm_simd.h"
#include "kernels/cpu/concat.h"
#include "kernels/cpu/dropout_avx512.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/streaming.h"
#include "tests/support/gradcheck.h"
#include "tests/support/isa_kernels.h"

namespace {

namespace cpu = unet::cpu;
using unet::cpu::Isa;
using unet::kernels::BatchNormShape;
using unet::kernels::ConcatShape;
using unet::test::random_vector;

// Runs f() with streaming on for every size, then off, restoring the threshold afterwards.
template <typename F>
void streamed_and_not(F f) {
  const std::size_t before = cpu::streaming_threshold_bytes();
  cpu::set_streaming_threshold_bytes(0);
  f(true);
  cpu::set_streaming_threshold_bytes(std::numeric_limits<std::size_t>::max());
  f(false);
  cpu::set_streaming_threshold_bytes(before);
}

// Output buffers whose data starts `shift` floats past a 64-byte boundary.
struct Shifted {
  std::vector<float> storage;
  float* data;
  Shifted(std::size_t n, int shift) : storage(n + 32) {
    const auto address = reinterpret_cast<std::uintptr_t>(storage.data());
    data = storage.data() + (64 - address % 64) / sizeof(float) % 16 + std::size_t(shift);
  }
  std::vector<float> values(std::size_t n) const { return {data, data + n}; }
};

struct BnKernels {
  Isa isa;
  decltype(&cpu::bn_simd::forward_train_avx2) forward_train;
  decltype(&cpu::bn_simd::forward_infer_avx2) forward_infer;
  decltype(&cpu::bn_simd::backward_train_avx2) backward_train;
};

TEST_CASE("streamed batchnorm outputs are the cached ones, bit for bit", "[batchnorm][simd][streaming]") {
  const BnKernels avx2{Isa::Avx2, cpu::bn_simd::forward_train_avx2, cpu::bn_simd::forward_infer_avx2,
                       cpu::bn_simd::backward_train_avx2};
  const BnKernels avx512{Isa::Avx512, cpu::bn_simd::forward_train_avx512, cpu::bn_simd::forward_infer_avx512,
                         cpu::bn_simd::backward_train_avx512};
  for (const BnKernels& k : unet::test::runnable({avx2, avx512})) {
    for (const BatchNormShape s : {BatchNormShape{2, 3, 1}, BatchNormShape{3, 2, 37}, BatchNormShape{1, 2, 4103},
                                   BatchNormShape{2, 2, 12007}}) {
      for (int shift : {0, 1, 7}) {
        INFO(cpu::to_string(k.isa) << " shape " << s.n << "x" << s.c << "x" << s.hw << " shift " << shift);
        const std::size_t n = s.size(), c = std::size_t(s.c);
        const auto x = random_vector<float>(n, 1), dy = random_vector<float>(n, 2);
        const auto gamma = random_vector<float>(c, 3, 0.5, 1.5), beta = random_vector<float>(c, 4);
        std::vector<std::vector<float>> outputs[2];
        streamed_and_not([&](bool streamed) {
          Shifted y(n, shift), y_infer(n, shift), dx(n, shift);
          std::vector<float> mean(c), invstd(c), running_mean(c, 0.0f), running_var(c, 1.0f), dgamma(c), dbeta(c);
          k.forward_train(s, x.data(), gamma.data(), beta.data(), 1e-3f, 0.1f, running_mean.data(),
                          running_var.data(), y.data, mean.data(), invstd.data(), true);
          k.forward_infer(s, x.data(), gamma.data(), beta.data(), running_mean.data(), running_var.data(), 1e-3f,
                          y_infer.data, false);
          k.backward_train(s, dy.data(), x.data(), y.data, gamma.data(), mean.data(), invstd.data(), dx.data,
                           dgamma.data(), dbeta.data(), true);
          outputs[streamed] = {y.values(n), y_infer.values(n), dx.values(n), dgamma, dbeta};
        });
        CHECK(outputs[1] == outputs[0]);
      }
    }
  }
}

TEST_CASE("streamed avx512 dropout outputs are the cached ones, bit for bit", "[dropout][simd][streaming]") {
  if (!cpu::isa_available(Isa::Avx512)) {
    WARN("skipped: AVX-512 not available here (CPU or UNET_ISA)");
    return;
  }
  for (std::size_t count : {std::size_t(5), std::size_t(64), std::size_t(4097), std::size_t(40009)}) {
    for (uint64_t offset : {uint64_t(0), uint64_t(3)}) {
      for (int shift : {0, 1}) {
        INFO("count " << count << " offset " << offset << " shift " << shift);
        const auto x = random_vector<float>(count, 9);
        std::vector<float> y[2];
        std::vector<uint8_t> mask[2];
        streamed_and_not([&](bool streamed) {
          Shifted out(count, shift);
          std::vector<uint8_t> m(count + 1, 7);
          cpu::dropout_forward_avx512(count, 0.3f, 99, offset, x.data(), out.data, m.data() + shift);
          y[streamed] = out.values(count);
          mask[streamed] = m;
        });
        CHECK(y[1] == y[0]);
        CHECK(mask[1] == mask[0]);
      }
    }
  }
}

TEST_CASE("streamed concat and split are the cached copies", "[concat][streaming]") {
  const ConcatShape s{2, 3, 2, 1001};
  const auto a = random_vector<float>(s.a_size(), 1), b = random_vector<float>(s.b_size(), 2);
  for (int shift : {0, 3}) {
    INFO("shift " << shift);
    std::vector<float> joined[2], parts[2];
    streamed_and_not([&](bool streamed) {
      Shifted out(s.out_size(), shift), a2(s.a_size(), shift), b2(s.b_size(), shift);
      cpu::concat_channels(s, a.data(), b.data(), out.data);
      cpu::split_channels(s, out.data, a2.data, b2.data);
      joined[streamed] = out.values(s.out_size());
      parts[streamed] = a2.values(s.a_size());
      const auto rest = b2.values(s.b_size());
      parts[streamed].insert(parts[streamed].end(), rest.begin(), rest.end());
    });
    CHECK(joined[1] == joined[0]);
    CHECK(parts[1] == parts[0]);
    std::vector<float> ab = a;
    ab.insert(ab.end(), b.begin(), b.end());
    CHECK(parts[1] == ab);
  }
}

}  // namespace
