#include "train/adam.h"

namespace unet {

Adam::Adam(NamedTensors parameters, AdamOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  for (const auto& [name, p] : parameters_) {
    m_.push_back(Tensor::zeros(p.shape(), p.device()));
    v_.push_back(Tensor::zeros(p.shape(), p.device()));
  }
}

void Adam::step() {
  ++step_;
  const AdamParams a{options_.lr, options_.beta1, options_.beta2, options_.eps,
                     options_.weight_decay, step_};
  // One fused update per device: parameters without a gradient this step are left alone.
  std::vector<AdamTensor> tensors;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i].second;
    const Tensor g = p.grad();
    if (g.defined()) tensors.push_back({p.data(), g.data(), m_[i].data(), v_[i].data(), std::size_t(p.numel())});
  }
  if (!tensors.empty()) backend(parameters_.front().second.device()).adam_update(a, tensors);
}

void Adam::zero_grad() {
  for (auto& [name, p] : parameters_) p.set_grad(Tensor());
}

NamedTensors Adam::state() const {
  NamedTensors out;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    out.emplace_back("m." + parameters_[i].first, m_[i]);
    out.emplace_back("v." + parameters_[i].first, v_[i]);
  }
  return out;
}

}  // namespace unet
