// U-Net (Ronneberger et al., 2015) as in the reference Keras work: an encoder of conv blocks and
// 2x2 max pooling, a decoder of transposed convolutions, skip concatenations and conv blocks, and
// a 1x1 convolution to the output channels.
//
// The default configuration is the reference model: 240x240x3 input, 16 base filters, depth 4
// (240-120-60-30-15), [Conv3x3 with bias -> BN -> ReLU] x 2 per block, max pool + dropout
// (half rate after the first pooling), 3x3 stride-2 'same' transposed convolutions, concat +
// dropout, 1x1 conv + sigmoid: 2,164,593 parameters.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/layers.h"
#include "engine/module.h"

namespace unet {

enum class Upsampling { Transposed3x3, Transposed2x2 };

struct UNetConfig {
  int in_channels = 3;
  int out_channels = 1;
  int base_filters = 16;
  int depth = 4;           // number of poolings
  float dropout = 0.05f;   // after each pooling (half after the first) and each concatenation
  bool batch_norm = true;
  Upsampling upsampling = Upsampling::Transposed3x3;

  // key=value pairs, for checkpoints and run logs; from_map rejects unknown keys and bad values.
  std::map<std::string, std::string> to_map() const;
  static UNetConfig from_map(const std::map<std::string, std::string>& values);
  void validate() const;
};

class UNet : public Module {
 public:
  UNet(const UNetConfig& config, uint64_t seed);

  // Logits [N, out_channels, H, W] for x [N, in_channels, H, W]; H and W must be multiples of
  // 2^depth.
  Tensor forward(const Tensor& x);
  // sigmoid(forward(x)): per-pixel probabilities, the reference model's output.
  Tensor probabilities(const Tensor& x);

  const UNetConfig& config() const { return config_; }
  PhiloxStream& dropout_stream() { return dropout_stream_; }

 private:
  // [Conv3x3 -> (BN) -> ReLU] x 2.
  class Block : public Module {
   public:
    Block(int in_channels, int out_channels, bool batch_norm, Rng& rng);
    Tensor forward(const Tensor& x) const;

   private:
    Tensor conv(const Conv2d& layer, const Tensor& x, bool bn_follows) const;

    Conv2d conv1_, conv2_;
    std::unique_ptr<BatchNorm2d> bn1_, bn2_;
  };

  struct Level {
    std::unique_ptr<Block> encoder;
    std::unique_ptr<Dropout> pool_dropout;
    std::unique_ptr<ConvTranspose2d> up;
    std::unique_ptr<Dropout> concat_dropout;
    std::unique_ptr<Block> decoder;
  };

  UNetConfig config_;
  PhiloxStream dropout_stream_;
  std::vector<Level> levels_;
  std::unique_ptr<Block> bottleneck_;
  std::unique_ptr<Conv2d> head_;
};

}  // namespace unet

namespace unet {

// A checkpoint holding the model config (meta keys "model.<key>") and its tensors ("model.<name>").
// `extra_meta` is stored alongside (e.g. the run that produced it).
void save_unet(const std::string& path, const UNet& model,
               const std::map<std::string, std::string>& extra_meta = {});
// Rebuilds the model from a checkpoint's config and loads its weights (the second form from a
// checkpoint already read; `path` names it in errors).
std::unique_ptr<UNet> load_unet(const std::string& path);
std::unique_ptr<UNet> load_unet(const Checkpoint& checkpoint, const std::string& path);

}  // namespace unet
