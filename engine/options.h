// Process-wide engine settings that select between implementations without changing results'
// meaning: which convolution the CUDA backend runs, and how it may choose.
#pragma once

#include <cstddef>

namespace unet {

// The CUDA backend's convolutions: Auto takes, per pass and shape, the implementation measured
// faster (engine/backends/conv_choice.h); Cudnn takes cuDNN wherever it can express the shape;
// Handwritten takes our implicit-GEMM kernels everywhere.
enum class ConvImpl { Auto, Cudnn, Handwritten };

struct EngineOptions {
  ConvImpl conv = ConvImpl::Auto;
  // cuDNN: only algorithms that give bitwise reproducible results.
  bool deterministic = true;
  // cuDNN: the largest workspace an algorithm may ask for.
  std::size_t cudnn_workspace_limit = std::size_t(256) << 20;
  // Print each cuDNN algorithm choice to stderr (one line per convolution shape and direction).
  bool log_cudnn = false;
};

EngineOptions& engine_options();

}  // namespace unet
