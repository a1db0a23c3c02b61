#include "bench/kernel_args.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace unet::bench {
namespace {

using kernels::Kernel;

constexpr float kEps = 1e-3f, kMomentum = 0.1f, kDropout = 0.05f, kSmooth = 1.0f;

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool takes_probabilities(LossKind k) { return k == LossKind::MSE || k == LossKind::Dice || k == LossKind::NegLogIoU; }

}  // namespace

void KernelArgs::add(std::string name, std::size_t count, Role role, Fill fill, bool bytes) {
  Operand o;
  o.name = std::move(name);
  o.count = std::max<std::size_t>(count, 1);
  o.bytes = bytes;
  o.role = role;
  o.fill = role == Role::Out ? Fill::Zero : fill;
  operands_.push_back(std::move(o));
}

KernelArgs::KernelArgs(const kernels::KernelCall& call, Backend& backend, uint64_t seed)
    : call_(call), backend_(backend) {
  const auto& cv = call.conv;
  const auto& ct = call.conv_t;
  const auto& bn = call.bn;
  const std::size_t c = std::size_t(bn.c), n = call.count;
  switch (call.kernel) {
    case Kernel::conv2d_forward:
      add("x", cv.x_size(), Role::In); add("w", cv.w_size(), Role::In); add("bias", std::size_t(cv.c_out), Role::In);
      add("y", cv.y_size(), Role::Out);
      break;
    case Kernel::conv2d_backward_data:
      add("dy", cv.y_size(), Role::In); add("w", cv.w_size(), Role::In); add("dx", cv.x_size(), Role::Out);
      break;
    case Kernel::conv2d_backward_filter:
      add("x", cv.x_size(), Role::In); add("dy", cv.y_size(), Role::In); add("dw", cv.w_size(), Role::Out);
      add("dbias", std::size_t(cv.c_out), Role::Out);
      break;
    case Kernel::conv_transpose2d_forward:
      add("x", ct.x_size(), Role::In); add("w", ct.w_size(), Role::In); add("bias", std::size_t(ct.c_out), Role::In);
      add("y", ct.y_size(), Role::Out);
      break;
    case Kernel::conv_transpose2d_backward_data:
      add("dy", ct.y_size(), Role::In); add("w", ct.w_size(), Role::In); add("dx", ct.x_size(), Role::Out);
      break;
    case Kernel::conv_transpose2d_backward_filter:
      add("x", ct.x_size(), Role::In); add("dy", ct.y_size(), Role::In); add("dw", ct.w_size(), Role::Out);
      add("dbias", std::size_t(ct.c_out), Role::Out);
      break;
    case Kernel::batchnorm_forward_train:
      add("x", bn.size(), Role::In); add("gamma", c, Role::In, Fill::Positive); add("beta", c, Role::In);
      add("running_mean", c, Role::InOut); add("running_var", c, Role::InOut, Fill::Positive);
      add("y", bn.size(), Role::Out); add("save_mean", c, Role::Out); add("save_invstd", c, Role::Out);
      break;
    case Kernel::batchnorm_forward_infer:
      add("x", bn.size(), Role::In); add("gamma", c, Role::In, Fill::Positive); add("beta", c, Role::In);
      add("running_mean", c, Role::In); add("running_var", c, Role::In, Fill::Positive); add("y", bn.size(), Role::Out);
      break;
    case Kernel::batchnorm_backward_train:
    case Kernel::batchnorm_backward_infer:
      add("dy", bn.size(), Role::In); add("x", bn.size(), Role::In); add("y", bn.size(), Role::In);
      add("gamma", c, Role::In, Fill::Positive); add("mean", c, Role::In); add("var_or_invstd", c, Role::In, Fill::Positive);
      add("dx", bn.size(), Role::Out); add("dgamma", c, Role::Out); add("dbeta", c, Role::Out);
      break;
    case Kernel::maxpool2x2_forward:
      add("x", call.pool.x_size(), Role::In); add("y", call.pool.y_size(), Role::Out);
      add("argmax", call.pool.y_size(), Role::Out, Fill::Zero, true);
      break;
    case Kernel::maxpool2x2_backward:
      add("dy", call.pool.y_size(), Role::In); add("argmax", call.pool.y_size(), Role::In, Fill::Argmax, true);
      add("dx", call.pool.x_size(), Role::Out);
      break;
    case Kernel::dropout_forward:
      add("x", n, Role::In); add("y", n, Role::Out); add("mask", n, Role::Out, Fill::Zero, true);
      break;
    case Kernel::dropout_backward:
      add("dy", n, Role::In); add("mask", n, Role::In, Fill::Binary, true); add("dx", n, Role::Out);
      break;
    case Kernel::concat_channels:
      add("a", call.concat.a_size(), Role::In); add("b", call.concat.b_size(), Role::In);
      add("out", call.concat.out_size(), Role::Out);
      break;
    case Kernel::split_channels:
      add("in", call.concat.out_size(), Role::In); add("a", call.concat.a_size(), Role::Out);
      add("b", call.concat.b_size(), Role::Out);
      break;
    case Kernel::fill: add("y", n, Role::Out); break;
    case Kernel::add:
    case Kernel::mul: add("a", n, Role::In); add("b", n, Role::In); add("y", n, Role::Out); break;
    case Kernel::scale: add("a", n, Role::In); add("y", n, Role::Out); break;
    case Kernel::scale_by: add("a", n, Role::In); add("s", 1, Role::In); add("y", n, Role::Out); break;
    case Kernel::accumulate: add("a", n, Role::In); add("y", n, Role::InOut); break;
    case Kernel::relu_forward:
    case Kernel::sigmoid_forward: add("x", n, Role::In); add("y", n, Role::Out); break;
    case Kernel::relu_backward:
    case Kernel::sigmoid_backward:
      add("dy", n, Role::In); add("y", n, Role::In, Fill::Probability); add("dx", n, Role::Out);
      break;
    case Kernel::sum: add("x", n, Role::In); add("out", 1, Role::Out); break;
    case Kernel::loss_forward:
    case Kernel::loss_backward: {
      add("input", n, Role::In, takes_probabilities(call.loss) ? Fill::Probability : Fill::Uniform);
      add("target", n, Role::In, Fill::Binary);
      if (call.kernel == Kernel::loss_forward) {
        add("out", 1, Role::Out);
      } else {
        add("dloss", 1, Role::In, Fill::Positive); add("dinput", n, Role::Out);
      }
      break;
    }
    case Kernel::adam_update:
      for (std::size_t t = 0; t < call.tensors.size(); ++t) {
        const std::string i = std::to_string(t);
        add("param" + i, call.tensors[t], Role::InOut); add("grad" + i, call.tensors[t], Role::In);
        add("m" + i, call.tensors[t], Role::InOut); add("v" + i, call.tensors[t], Role::InOut, Fill::Positive);
      }
      break;
    case Kernel::copy_from_host:
    case Kernel::copy_to_host:
    case Kernel::copy:
      add("src", n, Role::In, Fill::Uniform, true); add("dst", n, Role::Out, Fill::Zero, true);
      break;
  }

  for (std::size_t i = 0; i < operands_.size(); ++i) {
    Operand& o = operands_[i];
    uint64_t state = seed * 1000003u + i;
    const std::size_t bytes = o.count * (o.bytes ? 1 : sizeof(float));
    o.initial.assign(bytes, 0);
    for (std::size_t k = 0; k < o.count; ++k) {
      const double u = double(splitmix(state) >> 11) * 0x1.0p-53;  // [0, 1)
      if (o.bytes) {
        o.initial[k] = o.fill == Fill::Argmax ? uint8_t(u * 4) : o.fill == Fill::Binary || o.fill == Fill::Uniform ? uint8_t(u < 0.5) : 0;
        continue;
      }
      float v = 0;
      switch (o.fill) {
        case Fill::Uniform: v = float(2 * u - 1); break;
        case Fill::Positive: v = float(0.5 + u); break;
        case Fill::Probability: v = float(0.01 + 0.98 * u); break;
        case Fill::Binary: v = u < 0.3 ? 1.0f : 0.0f; break;
        case Fill::Argmax:
        case Fill::Zero: break;
      }
      std::memcpy(o.initial.data() + k * sizeof(float), &v, sizeof v);
    }
    o.device = backend_.allocator().allocate(bytes, &o.capacity);
    backend_.copy_from_host(o.device, o.initial.data(), bytes);
  }
  backend_.synchronize();
}

KernelArgs::~KernelArgs() {
  backend_.synchronize();
  for (Operand& o : operands_) backend_.allocator().deallocate(o.device, o.capacity);
}

void KernelArgs::restore() {
  for (Operand& o : operands_) {
    if (o.role == Role::InOut) backend_.copy_from_host(o.device, o.initial.data(), o.initial.size());
  }
}

void KernelArgs::run() {
  Backend& b = backend_;
  const kernels::KernelCall& k = call_;
  switch (k.kernel) {
    case Kernel::conv2d_forward: return b.conv2d_forward(k.conv, f(0), f(1), k.has_bias ? f(2) : nullptr, f(3));
    case Kernel::conv2d_backward_data: return b.conv2d_backward_data(k.conv, f(0), f(1), f(2));
    case Kernel::conv2d_backward_filter: return b.conv2d_backward_filter(k.conv, f(0), f(1), f(2), k.has_bias ? f(3) : nullptr);
    case Kernel::conv_transpose2d_forward:
      return b.conv_transpose2d_forward(k.conv_t, f(0), f(1), k.has_bias ? f(2) : nullptr, f(3));
    case Kernel::conv_transpose2d_backward_data: return b.conv_transpose2d_backward_data(k.conv_t, f(0), f(1), f(2));
    case Kernel::conv_transpose2d_backward_filter:
      return b.conv_transpose2d_backward_filter(k.conv_t, f(0), f(1), f(2), k.has_bias ? f(3) : nullptr);
    case Kernel::batchnorm_forward_train:
      return b.batchnorm_forward_train(k.bn, f(0), f(1), f(2), kEps, kMomentum, f(3), f(4), f(5), f(6), f(7), k.relu);
    case Kernel::batchnorm_forward_infer: return b.batchnorm_forward_infer(k.bn, f(0), f(1), f(2), f(3), f(4), kEps, f(5), k.relu);
    case Kernel::batchnorm_backward_train:
      return b.batchnorm_backward_train(k.bn, f(0), f(1), f(2), f(3), f(4), f(5), f(6), f(7), f(8), k.relu);
    case Kernel::batchnorm_backward_infer:
      return b.batchnorm_backward_infer(k.bn, f(0), f(1), f(2), f(3), f(4), f(5), kEps, f(6), f(7), f(8), k.relu);
    case Kernel::maxpool2x2_forward: return b.maxpool2x2_forward(k.pool, f(0), f(1), u8(2));
    case Kernel::maxpool2x2_backward: return b.maxpool2x2_backward(k.pool, f(0), u8(1), f(2));
    case Kernel::dropout_forward: return b.dropout_forward(k.count, kDropout, 1, 0, f(0), f(1), u8(2));
    case Kernel::dropout_backward: return b.dropout_backward(k.count, kDropout, f(0), u8(1), f(2));
    case Kernel::concat_channels: return b.concat_channels(k.concat, f(0), f(1), f(2));
    case Kernel::split_channels: return b.split_channels(k.concat, f(0), f(1), f(2));
    case Kernel::fill: return b.fill(k.count, 0.5f, f(0));
    case Kernel::add: return b.add(k.count, f(0), f(1), f(2));
    case Kernel::mul: return b.mul(k.count, f(0), f(1), f(2));
    case Kernel::scale: return b.scale(k.count, f(0), 0.5f, f(1));
    case Kernel::scale_by: return b.scale_by(k.count, f(0), f(1), f(2));
    case Kernel::accumulate: return b.accumulate(k.count, f(0), f(1));
    case Kernel::relu_forward: return b.relu_forward(k.count, f(0), f(1));
    case Kernel::relu_backward: return b.relu_backward(k.count, f(0), f(1), f(2));
    case Kernel::sigmoid_forward: return b.sigmoid_forward(k.count, f(0), f(1));
    case Kernel::sigmoid_backward: return b.sigmoid_backward(k.count, f(0), f(1), f(2));
    case Kernel::sum: return b.sum(k.count, f(0), f(1));
    case Kernel::loss_forward: return b.loss_forward(k.loss, k.count, f(0), f(1), kSmooth, f(2));
    case Kernel::loss_backward: return b.loss_backward(k.loss, k.count, f(0), f(1), kSmooth, f(2), f(3));
    case Kernel::adam_update: {
      std::vector<AdamTensor> tensors;
      for (std::size_t t = 0; t < k.tensors.size(); ++t) {
        tensors.push_back({f(4 * t), f(4 * t + 1), f(4 * t + 2), f(4 * t + 3), k.tensors[t]});
      }
      return b.adam_update(AdamParams{}, tensors);
    }
    case Kernel::copy_from_host:
    case Kernel::copy_to_host:
    case Kernel::copy: return b.copy(operands_[1].device, operands_[0].device, k.count);
  }
}

std::vector<uint8_t> KernelArgs::read(const Operand& o) const {
  std::vector<uint8_t> out(o.initial.size());
  backend_.copy_to_host(out.data(), o.device, out.size());
  backend_.synchronize();
  return out;
}

std::string KernelArgs::compare_outputs(KernelArgs& reference, double tolerance) {
  for (std::size_t i = 0; i < operands_.size(); ++i) {
    const Operand& o = operands_[i];
    if (o.role == Role::In) continue;
    const std::vector<uint8_t> got = read(o), want = reference.read(reference.operands_[i]);
    if (o.bytes) {
      const auto diff = std::mismatch(got.begin(), got.end(), want.begin());
      if (diff.first != got.end()) return o.name + "[" + std::to_string(diff.first - got.begin()) + "] differs";
      continue;
    }
    std::vector<float> g(o.count), w(o.count);
    std::memcpy(g.data(), got.data(), got.size());
    std::memcpy(w.data(), want.data(), want.size());
    double scale = 1;
    for (float v : w) scale = std::max(scale, double(std::fabs(v)));
    for (std::size_t k = 0; k < o.count; ++k) {
      if (!(std::fabs(double(g[k]) - double(w[k])) <= tolerance * scale)) {
        return o.name + "[" + std::to_string(k) + "] = " + std::to_string(g[k]) + ", CPU " + std::to_string(w[k]);
      }
    }
  }
  return "";
}

}  // namespace unet::bench
