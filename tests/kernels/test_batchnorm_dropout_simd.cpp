// The float batch normalisation variants (kernels/cpu/batchnorm_simd.h) and the AVX-512 dropout
// (kernels/cpu/dropout_avx512.h) on what the variant table (tests/bench/test_variants.cpp) does
// not reach: planes shorter than a vector, runs that end inside a vector, several runs a plane, a
// mean a thousand times the spread, and dropout streams that start or end inside a Philox
// counter or cross a 2^32 counter boundary. Each is checked against the reference kernel, and
// for bitwise independence of the thread count.
#include <omp.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "kernels/cpu/batchnorm.h"
#include "kernels/cpu/batchnorm_simd.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/dropout_avx512.h"
#include "kernels/cpu/isa.h"
#include "tests/support/gradcheck.h"
#include "tests/support/isa_kernels.h"

namespace {

namespace cpu = unet::cpu;
using unet::cpu::Isa;
using unet::kernels::BatchNormShape;
using unet::test::max_abs;
using unet::test::random_vector;
using unet::test::require_close;

struct BnKernels {
  Isa isa;
  decltype(&cpu::bn_simd::forward_train_avx2) forward_train;
  decltype(&cpu::bn_simd::forward_infer_avx2) forward_infer;
  decltype(&cpu::bn_simd::backward_train_avx2) backward_train;
};

const BnKernels kAvx2{Isa::Avx2, cpu::bn_simd::forward_train_avx2, cpu::bn_simd::forward_infer_avx2,
                      cpu::bn_simd::backward_train_avx2};
const BnKernels kAvx512{Isa::Avx512, cpu::bn_simd::forward_train_avx512, cpu::bn_simd::forward_infer_avx512,
                        cpu::bn_simd::backward_train_avx512};

BatchNormShape bn_shape(int n, int c, int hw) {
  BatchNormShape s{};
  s.n = n;
  s.c = c;
  s.hw = hw;
  return s;
}

// Every output of the three primitives, for one kernel set (or the reference when k is null).
struct BnOutputs {
  std::vector<float> y, save_mean, save_invstd, running_mean, running_var, y_infer, dx, dgamma, dbeta;
};

BnOutputs run_bn(const BnKernels* k, const BatchNormShape& s, const std::vector<float>& x, bool relu) {
  const std::size_t c = std::size_t(s.c);
  const auto gamma = random_vector<float>(c, 2, 0.5, 1.5), beta = random_vector<float>(c, 3);
  const auto dy = random_vector<float>(s.size(), 4);
  BnOutputs o{std::vector<float>(s.size()), std::vector<float>(c), std::vector<float>(c),
              random_vector<float>(c, 5),   random_vector<float>(c, 6, 0.5, 1.5), std::vector<float>(s.size()),
              std::vector<float>(s.size()), std::vector<float>(c), std::vector<float>(c)};
  const float eps = 1e-3f, momentum = 0.1f;
  if (k) {
    k->forward_train(s, x.data(), gamma.data(), beta.data(), eps, momentum, o.running_mean.data(),
                     o.running_var.data(), o.y.data(), o.save_mean.data(), o.save_invstd.data(), relu);
    k->forward_infer(s, x.data(), gamma.data(), beta.data(), o.running_mean.data(), o.running_var.data(), eps,
                     o.y_infer.data(), relu);
    k->backward_train(s, dy.data(), x.data(), o.y.data(), gamma.data(), o.save_mean.data(), o.save_invstd.data(),
                      o.dx.data(), o.dgamma.data(), o.dbeta.data(), relu);
  } else {
    cpu::batchnorm_forward_train(s, x.data(), gamma.data(), beta.data(), eps, momentum, o.running_mean.data(),
                                 o.running_var.data(), o.y.data(), o.save_mean.data(), o.save_invstd.data(), relu);
    cpu::batchnorm_forward_infer(s, x.data(), gamma.data(), beta.data(), o.running_mean.data(),
                                 o.running_var.data(), eps, o.y_infer.data(), relu);
    cpu::batchnorm_backward_train(s, dy.data(), x.data(), o.y.data(), gamma.data(), o.save_mean.data(),
                                  o.save_invstd.data(), o.dx.data(), o.dgamma.data(), o.dbeta.data(), relu);
  }
  return o;
}

// The variant table's tolerance (2e-5 of the largest reference value).
void require_matches(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  const std::vector<double> w(want.begin(), want.end());
  require_close(got, w, 2e-5 * std::max(1.0, max_abs(w)), 0.0, what);
}

// The backward pass gets the variant's own forward outputs (its y, mean and invstd), so a
// mismatch there would show up in the forward checks first.
void check_against_reference(const BnKernels& k, const BatchNormShape& s, const std::vector<float>& x) {
  for (bool relu : {false, true}) {
    INFO("shape " << s.n << "x" << s.c << "x" << s.hw << (relu ? " +relu" : ""));
    const BnOutputs got = run_bn(&k, s, x, relu), want = run_bn(nullptr, s, x, relu);
    require_matches(got.y, want.y, "y");
    require_matches(got.save_mean, want.save_mean, "save_mean");
    require_matches(got.save_invstd, want.save_invstd, "save_invstd");
    require_matches(got.running_mean, want.running_mean, "running_mean");
    require_matches(got.running_var, want.running_var, "running_var");
    require_matches(got.y_infer, want.y_infer, "y (inference)");
    require_matches(got.dx, want.dx, "dx");
    require_matches(got.dgamma, want.dgamma, "dgamma");
    require_matches(got.dbeta, want.dbeta, "dbeta");
  }
}

const std::vector<BatchNormShape> kOddShapes = {
    bn_shape(2, 3, 1),     // one value a plane
    bn_shape(3, 2, 17),    // whole vectors and a 1-lane tail
    bn_shape(1, 2, 4103),  // two runs a plane, neither a multiple of 16
    bn_shape(2, 5, 225),   // the 15x15 planes of the deepest layer
    bn_shape(1, 3, 12007), // batch 1, few channels: both threads, three runs a plane
};

TEST_CASE("simd batchnorm matches the reference on odd shapes and with a large mean", "[batchnorm][simd]") {
  for (const BnKernels& k : unet::test::runnable({kAvx2, kAvx512})) {
    INFO(cpu::to_string(k.isa));
    for (const BatchNormShape& s : kOddShapes) check_against_reference(k, s, random_vector<float>(s.size(), 1));
    // Mean 1000, spread 0.6: a float scale applied to x before centring would be off by 1e-4.
    const BatchNormShape s = bn_shape(2, 3, 5000);
    check_against_reference(k, s, random_vector<float>(s.size(), 7, 999.0, 1001.0));
  }
}

TEST_CASE("simd batchnorm gives the same bits with 1 and 2 threads", "[batchnorm][simd]") {
  const int before = omp_get_max_threads();
  for (const BnKernels& k : unet::test::runnable({kAvx2, kAvx512})) {
    for (const BatchNormShape& s : kOddShapes) {
      INFO(cpu::to_string(k.isa) << " shape " << s.n << "x" << s.c << "x" << s.hw);
      const auto x = random_vector<float>(s.size(), 1);
      omp_set_num_threads(1);
      const BnOutputs one = run_bn(&k, s, x, true);
      omp_set_num_threads(2);
      const BnOutputs two = run_bn(&k, s, x, true);
      CHECK(one.y == two.y);
      CHECK(one.save_mean == two.save_mean);
      CHECK(one.save_invstd == two.save_invstd);
      CHECK(one.y_infer == two.y_infer);
      CHECK(one.dx == two.dx);
      CHECK(one.dgamma == two.dgamma);
      CHECK(one.dbeta == two.dbeta);
    }
  }
  omp_set_num_threads(before);
}

TEST_CASE("avx512 dropout: the reference's mask and output, bit for bit, at any offset and length",
          "[dropout][simd]") {
  if (!cpu::isa_available(Isa::Avx512)) {
    WARN("skipped: AVX-512 not available here (CPU or UNET_ISA)");
    return;
  }
  // Offsets that start inside a counter, and ones whose counters cross 2^32 within a batch.
  const uint64_t wrap = (uint64_t(1) << 34) - 40;
  for (uint64_t offset : {uint64_t(0), uint64_t(1), uint64_t(2), uint64_t(3), uint64_t(6), wrap, wrap + 3}) {
    for (std::size_t count : {std::size_t(1), std::size_t(3), std::size_t(64), std::size_t(67), std::size_t(4097),
                              std::size_t(40009)}) {
      for (float p : {0.0f, 0.1f, 0.5f}) {
        INFO("offset " << offset << " count " << count << " p " << p);
        const auto x = random_vector<float>(count, 9);
        std::vector<float> y(count), y_ref(count);
        std::vector<uint8_t> mask(count, 7), mask_ref(count, 7);
        cpu::dropout_forward_avx512(count, p, 1234567, offset, x.data(), y.data(), mask.data());
        cpu::dropout_forward(count, p, uint64_t(1234567), offset, x.data(), y_ref.data(), mask_ref.data());
        REQUIRE(mask == mask_ref);
        REQUIRE(y == y_ref);
      }
    }
  }
}

}  // namespace
