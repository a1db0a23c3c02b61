// The Backend interface: one method per primitive that the ops need (the list and its conventions
// are in kernels/primitives.h), over raw device pointers and the shape structs of kernels/shapes.h.
//
// Ops (engine/ops/) check shapes, allocate outputs and record autograd nodes; they never branch
// on the device. They ask backend(tensor.device()) to run the primitive. A CUDA backend plugs in
// by implementing this interface (engine/backends/), without touching any op. All pointers given
// to a backend belong to its device; scalars that are results of reductions (losses, sums) stay
// on the device as one-element arrays.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "kernels/kernel_call.h"
#include "kernels/primitives.h"
#include "kernels/shapes.h"

namespace unet {

enum class Device { CPU, CUDA };
std::string to_string(Device device);

using kernels::AdamParams;
using kernels::AdamTensor;
using kernels::BatchNormShape;
using kernels::ConcatShape;
using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;
using kernels::Pool2dShape;

using kernels::LossKind;
using kernels::to_string;  // of a LossKind


class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual CachingAllocator& allocator() = 0;
  // Waits until all queued work is done (a no-op on the CPU).
  virtual void synchronize() = 0;

  // One pure virtual method per primitive of kernels/primitives.h, where each is documented.
#define UNET_BACKEND_METHOD(name, params, args, call) virtual void name params = 0;
  UNET_PRIMITIVES(UNET_BACKEND_METHOD)
#undef UNET_BACKEND_METHOD
};

// The backend for a device, created on first use. Throws a one-line std::runtime_error when the
// device is unavailable (a build without CUDA, or no usable GPU).
Backend& backend(Device device);

// "cpu", "cuda" (throws the reason when unusable) or "auto" (CUDA when usable, else the CPU,
// saying so once on stderr).
Device resolve_device(const std::string& name);

// Makes backend(device) return `wrapper` (nullptr: the real backend again). The profiler wraps
// the real backend this way; the wrapper shares the real backend's allocator, so tensors made
// before, during and after live on.
void set_backend_wrapper(Device device, Backend* wrapper);

// Routes Device::CUDA to the CUDA backend compiled over the CPU emulation layer (also set by the
// environment variable UNET_CUDA_EMULATION=1): every CUDA kernel then runs on the CPU, one fiber
// per GPU thread. For tests and for reading kernels at work; slow. Takes effect only before the
// CUDA backend is first used.
void set_cuda_emulation(bool on);

}  // namespace unet
