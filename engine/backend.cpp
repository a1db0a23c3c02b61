#include "engine/backend.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "engine/backends/cpu_backend.h"
#include "engine/backends/cuda_backend.h"
#include "engine/options.h"

namespace unet {
namespace {

bool g_cuda_emulation = [] {
  const char* env = std::getenv("UNET_CUDA_EMULATION");
  return env && std::strcmp(env, "0") != 0;
}();

std::unique_ptr<Backend> make_cuda() {
  if (g_cuda_emulation) return cuda_emu::make_backend();
#if defined(UNET_HAVE_CUDA)
  return cuda::make_backend();
#else
  throw std::runtime_error("this build has no CUDA backend (it was configured without nvcc)");
#endif
}

std::atomic<Backend*> g_wrappers[2] = {nullptr, nullptr};

}  // namespace

std::string to_string(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

EngineOptions& engine_options() {
  static EngineOptions options;
  return options;
}

void set_cuda_emulation(bool on) { g_cuda_emulation = on; }

void set_backend_wrapper(Device device, Backend* wrapper) { g_wrappers[int(device)] = wrapper; }

Backend& backend(Device device) {
  if (Backend* wrapper = g_wrappers[int(device)].load(std::memory_order_acquire)) return *wrapper;
  // Backends are never destroyed: tensors in static storage may outlive any destruction order.
  if (device == Device::CPU) {
    static Backend* cpu = make_cpu_backend().release();
    return *cpu;
  }
  static std::once_flag once;
  static Backend* cuda = nullptr;
  static std::string failure;
  std::call_once(once, [] {
    try {
      cuda = make_cuda().release();
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  if (!cuda) throw std::runtime_error("device cuda: " + failure);
  return *cuda;
}

Device resolve_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") {
    backend(Device::CUDA);  // throws the one-line reason when unusable
    return Device::CUDA;
  }
  if (name == "auto") {
    try {
      backend(Device::CUDA);
      return Device::CUDA;
    } catch (const std::runtime_error& e) {
      static std::once_flag said;
      std::call_once(said, [&] { std::fprintf(stderr, "unet: %s; running on the CPU\n", e.what()); });
      return Device::CPU;
    }
  }
  throw std::invalid_argument("unknown device '" + name + "' (expected auto, cpu or cuda)");
}

}  // namespace unet
