// The CPU backend: each primitive runs the kernel variant that kernels/cpu/variants.h chooses for
// the call's shape (or the one forced with --kernels / UNET_KERNELS), over a caching allocator of
// 64-byte aligned host memory.
#include "engine/backends/cpu_backend.h"

#include <cstdlib>

#include "kernels/cpu/variants.h"

namespace unet {
namespace {

using kernels::Kernel;

class CpuBackend final : public Backend {
 public:
  CpuBackend()
      : allocator_([](std::size_t bytes) { return std::aligned_alloc(64, bytes); },
                   [](void* ptr) { std::free(ptr); }) {}

  Device device() const override { return Device::CPU; }
  CachingAllocator& allocator() override { return allocator_; }
  void synchronize() override {}

#define UNET_CPU_DISPATCH(name, params, args, call)                                                 \
  void name params override {                                                                       \
    cpu::choose(kernels::make_call(Kernel::name, UNET_UNPAREN call)).get<Kernel::name>() args; \
  }
  UNET_PRIMITIVES(UNET_CPU_DISPATCH)
#undef UNET_CPU_DISPATCH

 private:
  CachingAllocator allocator_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace unet
