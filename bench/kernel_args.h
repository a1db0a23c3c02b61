// Replays one recorded kernel call (kernels/kernel_call.h) on a backend: allocates its operands on
// the backend's device, fills the inputs with deterministic values that suit each operand (a
// variance is positive, a mask is 0/1, an argmax is 0..3), runs the primitive, and reads outputs
// back so that a GPU result can be checked against the CPU one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/kernel_call.h"

namespace unet::bench {

class KernelArgs {
 public:
  // Operands of `call` on `backend`'s device; the same `seed` gives the same values on every backend.
  KernelArgs(const kernels::KernelCall& call, Backend& backend, uint64_t seed);
  ~KernelArgs();
  KernelArgs(const KernelArgs&) = delete;
  KernelArgs& operator=(const KernelArgs&) = delete;

  // Puts back the initial values of operands the kernel updates in place (running statistics, Adam
  // state, an accumulator), so that every run does the same work from the same state.
  void restore();
  void run();
  // "" when every output matches `reference`'s within a tolerance relative to its largest value
  // (bytes exactly); else what differs first.
  std::string compare_outputs(KernelArgs& reference, double tolerance);

 private:
  enum class Role { In, Out, InOut };
  enum class Fill { Uniform, Positive, Probability, Binary, Argmax, Zero };
  struct Operand {
    std::string name;
    std::size_t count = 0;
    bool bytes = false;  // uint8 rather than float
    Role role = Role::In;
    Fill fill = Fill::Uniform;
    void* device = nullptr;
    std::size_t capacity = 0;
    std::vector<uint8_t> initial;
  };
  void add(std::string name, std::size_t count, Role role, Fill fill = Fill::Uniform, bool bytes = false);
  float* f(std::size_t i) const { return static_cast<float*>(operands_[i].device); }
  uint8_t* u8(std::size_t i) const { return static_cast<uint8_t*>(operands_[i].device); }
  std::vector<uint8_t> read(const Operand& o) const;

  kernels::KernelCall call_;
  Backend& backend_;
  std::vector<Operand> operands_;
};

}  // namespace unet::bench
