// Which convolution implementation the CUDA backend's Auto mode runs (engine/options.h), per pass
// and shape: a rule read off side-by-side timings of every reference-model layer on an H200 at
// batch 6 (docs/BENCHMARKS.md, "First runs on a GPU"), FP32, cuDNN in deterministic mode.
//   forward          cuDNN from 128 input channels up (1.07-1.33x faster there); below, ours
//                    (ours 0.62-0.94x cuDNN's time; 16 -> 32 at 120 a tie)
//   backward-data    cuDNN where dx has more than 16 channels (1.00-1.74x); ours for 16 or fewer
//                    (0.75-0.89x, the 1x1 head included)
//   backward-filter  ours where c_in x c_out <= 1024 (0.05-1.00x: cuDNN's deterministic
//                    algorithms take 1.9 ms for the 1x1 head's 16 weights, ours 0.1 ms), cuDNN
//                    above (1.2-5.5x)
//   transposed       ours in all three passes: cuDNN runs them as its convolutions on a
//                    one-pixel-larger image (cudnn_conv_transpose.h) and was slower by 1.2-4.7x
//                    at batch 6 and 64
// Pure shape logic, so CI checks it without a GPU. Another GPU may draw other lines: `--conv
// cudnn` and `--conv handwritten` force one side.
#pragma once

#include "kernels/shapes.h"

namespace unet {

enum class ConvPass { Forward, BackwardData, BackwardFilter };

inline bool cudnn_is_faster(const kernels::Conv2dShape& s, ConvPass pass) {
  switch (pass) {
    case ConvPass::Forward: return s.c_in >= 128;
    case ConvPass::BackwardData: return s.c_in > 16;
    case ConvPass::BackwardFilter: return s.c_in * s.c_out > 1024;
  }
  return false;
}

}  // namespace unet
