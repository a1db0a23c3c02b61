// Helpers shared by the emulation-layer tests.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "kernels/cuda/runtime.h"

namespace unet::emu_test {

// Runs the body under one thread order and restores the previous order afterwards.
class OrderScope {
 public:
  explicit OrderScope(emu::ThreadOrder order, std::uint64_t seed = 0)
      : saved_(emu::thread_order()) {
    emu::set_thread_order(order, seed);
  }
  ~OrderScope() { emu::set_thread_order(saved_); }
  OrderScope(const OrderScope&) = delete;
  OrderScope& operator=(const OrderScope&) = delete;

 private:
  emu::ThreadOrder saved_;
};

inline const char* order_name(emu::ThreadOrder order) {
  switch (order) {
    case emu::ThreadOrder::Forward: return "forward";
    case emu::ThreadOrder::Reverse: return "reverse";
    case emu::ThreadOrder::Random: return "random";
  }
  return "?";
}

// The EmulationError a call throws (fails the test when it throws nothing or something else).
template <typename F>
emu::EmulationError launch_error(F&& f) {
  try {
    f();
  } catch (const emu::EmulationError& e) {
    return e;
  }
  FAIL("expected an EmulationError");
  return emu::EmulationError(cudaSuccess, "");
}

// "test_kernels.cu:LINE" as error messages write it (__FILE__ may be an absolute path).
inline std::string site(int line) { return "test_kernels.cu:" + std::to_string(line); }

}  // namespace unet::emu_test
