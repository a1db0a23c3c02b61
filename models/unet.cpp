#include "models/unet.h"

#include <algorithm>
#include <stdexcept>

#include "engine/ops.h"

namespace unet {
namespace {

int parse_int(const std::map<std::string, std::string>& values, const std::string& key, int fallback) {
  auto it = values.find(key);
  if (it == values.end()) return fallback;
  std::size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != it->second.size()) {
    throw std::invalid_argument("model config: '" + key + "' must be an integer, got '" + it->second + "'");
  }
  return v;
}

}  // namespace

std::map<std::string, std::string> UNetConfig::to_map() const {
  return {{"in_channels", std::to_string(in_channels)},
          {"out_channels", std::to_string(out_channels)},
          {"base_filters", std::to_string(base_filters)},
          {"depth", std::to_string(depth)},
          {"dropout", std::to_string(dropout)},
          {"batch_norm", batch_norm ? "1" : "0"},
          {"upsampling", upsampling == Upsampling::Transposed3x3 ? "transposed3x3" : "transposed2x2"}};
}

UNetConfig UNetConfig::from_map(const std::map<std::string, std::string>& values) {
  static const char* known[] = {"in_channels", "out_channels", "base_filters", "depth",
                                "dropout",     "batch_norm",   "upsampling"};
  for (const auto& [key, value] : values) {
    if (std::find(std::begin(known), std::end(known), key) == std::end(known)) {
      throw std::invalid_argument("model config: unknown key '" + key + "'");
    }
  }
  UNetConfig c;
  c.in_channels = parse_int(values, "in_channels", c.in_channels);
  c.out_channels = parse_int(values, "out_channels", c.out_channels);
  c.base_filters = parse_int(values, "base_filters", c.base_filters);
  c.depth = parse_int(values, "depth", c.depth);
  c.batch_norm = parse_int(values, "batch_norm", c.batch_norm ? 1 : 0) != 0;
  if (auto it = values.find("dropout"); it != values.end()) {
    try {
      c.dropout = std::stof(it->second);
    } catch (const std::exception&) {
      throw std::invalid_argument("model config: 'dropout' must be a number, got '" + it->second + "'");
    }
  }
  if (auto it = values.find("upsampling"); it != values.end()) {
    if (it->second == "transposed3x3") {
      c.upsampling = Upsampling::Transposed3x3;
    } else if (it->second == "transposed2x2") {
      c.upsampling = Upsampling::Transposed2x2;
    } else {
      throw std::invalid_argument("model config: 'upsampling' must be transposed3x3 or transposed2x2, got '" +
                                  it->second + "'");
    }
  }
  c.validate();
  return c;
}

void UNetConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("model config: " + what);
  };
  require(in_channels >= 1, "in_channels must be >= 1");
  require(out_channels >= 1, "out_channels must be >= 1");
  require(base_filters >= 1, "base_filters must be >= 1");
  require(depth >= 1 && depth <= 8, "depth must be in [1, 8]");
  require(dropout >= 0.0f && dropout < 1.0f, "dropout must be in [0, 1)");
}

UNet::Block::Block(int in_channels, int out_channels, bool batch_norm, Rng& rng)
    : conv1_(in_channels, out_channels, 3, Init::HeNormal, rng),
      conv2_(out_channels, out_channels, 3, Init::HeNormal, rng) {
  register_module("conv1", &conv1_);
  if (batch_norm) {
    bn1_ = std::make_unique<BatchNorm2d>(out_channels);
    register_module("bn1", bn1_.get());
  }
  register_module("conv2", &conv2_);
  if (batch_norm) {
    bn2_ = std::make_unique<BatchNorm2d>(out_channels);
    register_module("bn2", bn2_.get());
  }
}

// A training-mode BatchNorm subtracts its batch mean, so the bias of the convolution before it
// has no effect on the loss and its exact gradient is zero: it is not computed (the weight-gradient
// pass skips the sum), and Adam, which would turn that sum's rounding noise into steps of +-lr,
// leaves the bias alone. In eval mode the running mean has absorbed it.
Tensor UNet::Block::conv(const Conv2d& layer, const Tensor& x, bool bn_follows) const {
  return bn_follows && is_training() ? layer.forward_no_bias_grad(x) : layer.forward(x);
}

Tensor UNet::Block::forward(const Tensor& x) const {
  Tensor h = conv(conv1_, x, bn1_ != nullptr);
  h = bn1_ ? bn1_->forward(h, /*relu=*/true) : ops::relu(h);
  h = conv(conv2_, h, bn2_ != nullptr);
  return bn2_ ? bn2_->forward(h, /*relu=*/true) : ops::relu(h);
}

UNet::UNet(const UNetConfig& config, uint64_t seed) : config_(config) {
  config_.validate();
  Rng rng(seed);
  dropout_stream_.seed = rng.fork();
  const int kernel = config_.upsampling == Upsampling::Transposed3x3 ? 3 : 2;
  levels_.resize(std::size_t(config_.depth));
  int in = config_.in_channels;
  for (int i = 0; i < config_.depth; ++i) {
    Level& level = levels_[std::size_t(i)];
    const int filters = config_.base_filters << i;
    level.encoder = std::make_unique<Block>(in, filters, config_.batch_norm, rng);
    register_module("enc" + std::to_string(i), level.encoder.get());
    const float pool_rate = i == 0 ? config_.dropout * 0.5f : config_.dropout;
    level.pool_dropout = std::make_unique<Dropout>(pool_rate, &dropout_stream_);
    in = filters;
  }
  const int bottom = config_.base_filters << config_.depth;
  bottleneck_ = std::make_unique<Block>(in, bottom, config_.batch_norm, rng);
  register_module("bottleneck", bottleneck_.get());
  in = bottom;
  for (int i = config_.depth - 1; i >= 0; --i) {
    Level& level = levels_[std::size_t(i)];
    const int filters = config_.base_filters << i;
    level.up = std::make_unique<ConvTranspose2d>(in, filters, kernel, 2, Init::GlorotUniform, rng);
    register_module("up" + std::to_string(i), level.up.get());
    level.concat_dropout = std::make_unique<Dropout>(config_.dropout, &dropout_stream_);
    level.decoder = std::make_unique<Block>(2 * filters, filters, config_.batch_norm, rng);
    register_module("dec" + std::to_string(i), level.decoder.get());
    in = filters;
  }
  head_ = std::make_unique<Conv2d>(in, config_.out_channels, 1, Init::GlorotUniform, rng);
  register_module("head", head_.get());
  for (Level& level : levels_) {
    register_module("pool_dropout" + std::to_string(&level - levels_.data()), level.pool_dropout.get());
    register_module("concat_dropout" + std::to_string(&level - levels_.data()), level.concat_dropout.get());
  }
}

Tensor UNet::forward(const Tensor& x) {
  if (x.ndim() != 4 || x.size(1) != config_.in_channels) {
    throw std::invalid_argument("UNet: input must have shape [N, " + std::to_string(config_.in_channels) +
                                ", H, W], got " + to_string(x.shape()));
  }
  const int64_t multiple = int64_t(1) << config_.depth;
  if (x.size(2) % multiple != 0 || x.size(3) % multiple != 0) {
    throw std::invalid_argument("UNet: input height and width must be multiples of 2^depth = " +
                                std::to_string(multiple) + ", got " + to_string(x.shape()));
  }
  std::vector<Tensor> skips;
  Tensor h = x;
  for (Level& level : levels_) {
    h = level.encoder->forward(h);
    skips.push_back(h);
    h = level.pool_dropout->forward(ops::max_pool2x2(h));
  }
  h = bottleneck_->forward(h);
  for (int i = config_.depth - 1; i >= 0; --i) {
    Level& level = levels_[std::size_t(i)];
    h = ops::concat_channels(level.up->forward(h), skips[std::size_t(i)]);
    h = level.decoder->forward(level.concat_dropout->forward(h));
  }
  return head_->forward(h);
}

Tensor UNet::probabilities(const Tensor& x) { return ops::sigmoid(forward(x)); }

}  // namespace unet
