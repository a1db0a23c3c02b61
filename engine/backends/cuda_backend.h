// Factories of the CUDA backend. The same source (cuda_backend.cpp) is compiled twice: against
// the CUDA runtime into unet::cuda (only when nvcc is available), and against the CPU emulation
// layer into unet::cuda_emu (always), so every CI run exercises the CUDA backend's code.
#pragma once

#include <memory>

#include "engine/backend.h"

namespace unet {

namespace cuda {
// Throws a one-line std::runtime_error when no usable GPU is present.
std::unique_ptr<Backend> make_backend();
}  // namespace cuda

namespace cuda_emu {
std::unique_ptr<Backend> make_backend();
}  // namespace cuda_emu

}  // namespace unet
