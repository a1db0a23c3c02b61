// Kernel launches of the emulation layer: UNET_LAUNCH (emu.h) builds a Launcher, whose call
// operator takes exactly the kernel's parameters (so arguments convert as in a call of the
// kernel), checks every pointer argument and runs the grid (kernels/emu/scheduler.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

#include "kernels/emu/api.h"
#include "kernels/emu/device.h"

namespace unet::emu {

// A launch that failed: bad configuration, a host pointer argument, a barrier or warp fault, or
// an exception thrown by kernel code. The message is one paragraph naming the kernel, the launch
// site and the fault site (file:line, block and thread). code() is the cudaError_t a real GPU
// would have reported, roughly.
class EmulationError : public std::runtime_error {
 public:
  EmulationError(api::cudaError_t code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  api::cudaError_t code() const { return code_; }

 private:
  api::cudaError_t code_;
};

// The order in which a block's runnable threads are resumed in each round (and blocks are run).
// The default comes from the environment variable UNET_EMU_ORDER=forward|reverse|random (and
// UNET_EMU_SEED for random), read at the first launch; forward when unset.
enum class ThreadOrder { Forward, Reverse, Random };
void set_thread_order(ThreadOrder order, std::uint64_t seed = 0);
ThreadOrder thread_order();

// Counters for tests and measurements: fiber resumes since the program started.
std::uint64_t fiber_resume_count();

namespace detail {

struct LaunchSite {
  const char* kernel;  // as written in UNET_LAUNCH, e.g. "gemm_kernel<16>"
  const char* file;
  int line;
};

struct LaunchRequest {
  LaunchSite site;
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes;
  api::cudaStream_t stream;
  std::uintptr_t kernel_address;  // key of cudaFuncSetAttribute
  void (*run_thread)(const void* closure);
  const void* closure;
};

// Runs the whole grid; throws EmulationError.
void launch(const LaunchRequest& request);

// runtime.cpp: does the pointer lie inside (or one past the end of) a live allocation? Is the
// stream null or alive? How much dynamic shared memory may this kernel ask for?
bool is_device_address(std::uintptr_t address);
bool is_valid_stream(api::cudaStream_t stream);
std::size_t dynamic_shared_limit(std::uintptr_t kernel_address);
// scheduler.cpp: the error for a pointer argument that is not device memory.
[[noreturn]] void throw_host_pointer_argument(const LaunchSite& site, int position, int count,
                                              std::uintptr_t address);

template <typename P>
void check_argument(const LaunchSite& site, int position, int count, const P& value) {
  if constexpr (std::is_pointer_v<P> && !std::is_function_v<std::remove_pointer_t<P>>) {
    const auto address = reinterpret_cast<std::uintptr_t>(value);
    if (address != 0 && !is_device_address(address))
      throw_host_pointer_argument(site, position, count, address);
  }
}

template <typename... Params>
class Launcher {
  static_assert((!std::is_reference_v<Params> && ...),
                "CUDA kernels take their parameters by value (nvcc rejects reference parameters)");

 public:
  using Kernel = void (*)(Params...);
  Launcher(Kernel kernel, LaunchSite site, dim3 grid, dim3 block, std::size_t shared_bytes,
           api::cudaStream_t stream)
      : kernel_(kernel),
        site_(site),
        grid_(grid),
        block_(block),
        shared_bytes_(shared_bytes),
        stream_(stream) {}

  void operator()(Params... args) const {
    int position = 0;
    (check_argument(site_, ++position, static_cast<int>(sizeof...(Params)), args), ...);
    // The launch's copy of the arguments; each thread's call copies them again.
    std::tuple<Params...> arguments(args...);
    struct Closure {
      Kernel kernel;
      std::tuple<Params...>* arguments;
    } closure{kernel_, &arguments};
    launch(LaunchRequest{site_, grid_, block_, shared_bytes_, stream_,
                         reinterpret_cast<std::uintptr_t>(kernel_),
                         [](const void* c) {
                           const auto& cl = *static_cast<const Closure*>(c);
                           std::apply(cl.kernel, *cl.arguments);
                         },
                         &closure});
  }

 private:
  Kernel kernel_;
  LaunchSite site_;
  dim3 grid_;
  dim3 block_;
  std::size_t shared_bytes_;
  api::cudaStream_t stream_;
};

template <typename... Params>
Launcher<Params...> make_launcher(void (*kernel)(Params...), const char* name, const char* file,
                                  int line, dim3 grid, dim3 block, std::size_t shared_bytes,
                                  api::cudaStream_t stream) {
  return Launcher<Params...>(kernel, LaunchSite{name, file, line}, grid, block, shared_bytes,
                             stream);
}

}  // namespace detail
}  // namespace unet::emu
