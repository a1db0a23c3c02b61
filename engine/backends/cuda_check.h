// Error checks for CUDA runtime calls: a failure becomes an exception naming the call site and
// the runtime's own description of the error.
#pragma once

#include <stdexcept>
#include <string>

#include "kernels/cuda/runtime.h"

#define UNET_CUDA_CHECK(call)                                                                   \
  do {                                                                                          \
    const cudaError_t unet_status_ = (call);                                                    \
    if (unet_status_ != cudaSuccess) {                                                          \
      throw std::runtime_error(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " + \
                               #call + " failed: " + cudaGetErrorString(unet_status_));         \
    }                                                                                           \
  } while (0)
