// The CPU backend: forwards every primitive to the kernels in kernels/cpu/, with a caching
// allocator over 64-byte aligned host memory.
#include "engine/backends/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/adam.h"
#include "kernels/cpu/batchnorm.h"
#include "kernels/cpu/concat.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/pool.h"

namespace unet {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend()
      : allocator_([](std::size_t bytes) { return std::aligned_alloc(64, bytes); },
                   [](void* ptr) { std::free(ptr); }) {}

  Device device() const override { return Device::CPU; }
  CachingAllocator& allocator() override { return allocator_; }
  void synchronize() override {}

  void copy_from_host(void* dst, const void* src, std::size_t bytes) override { copy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override { copy(dst, src, bytes); }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill(std::size_t count, float value, float* y) override { cpu::fill(count, value, y); }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      float* y) override {
    cpu::conv2d_forward(s, x, w, bias, y);
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w,
                            float* dx) override {
    cpu::conv2d_backward_data(s, dy, w, dx);
  }
  void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                              float* dbias) override {
    cpu::conv2d_backward_filter(s, x, dy, dw, dbias);
  }
  void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                                const float* bias, float* y) override {
    cpu::conv_transpose2d_forward(s, x, w, bias, y);
  }
  void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy,
                                      const float* w, float* dx) override {
    cpu::conv_transpose2d_backward_data(s, dy, w, dx);
  }
  void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x,
                                        const float* dy, float* dw, float* dbias) override {
    cpu::conv_transpose2d_backward_filter(s, x, dy, dw, dbias);
  }

  void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, float* y, float* save_mean, float* save_invstd,
                               bool relu) override {
    cpu::batchnorm_forward_train(s, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                                 save_mean, save_invstd, relu);
  }
  void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* y, bool relu) override {
    cpu::batchnorm_forward_infer(s, x, gamma, beta, running_mean, running_var, eps, y, relu);
  }
  void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x,
                                const float* y, const float* gamma, const float* save_mean,
                                const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                                bool relu) override {
    cpu::batchnorm_backward_train(s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                                  relu);
  }
  void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x,
                                const float* y, const float* gamma, const float* running_mean,
                                const float* running_var, float eps, float* dx, float* dgamma,
                                float* dbeta, bool relu) override {
    cpu::batchnorm_backward_infer(s, dy, x, y, gamma, running_mean, running_var, eps, dx, dgamma,
                                  dbeta, relu);
  }

  void maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y,
                          uint8_t* argmax) override {
    cpu::maxpool2x2_forward(s, x, y, argmax);
  }
  void maxpool2x2_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax,
                           float* dx) override {
    cpu::maxpool2x2_backward(s, dy, argmax, dx);
  }

  void dropout_forward(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x,
                       float* y, uint8_t* mask) override {
    cpu::dropout_forward(count, p, seed, offset, x, y, mask);
  }
  void dropout_backward(std::size_t count, float p, const float* dy, const uint8_t* mask,
                        float* dx) override {
    cpu::dropout_backward(count, p, dy, mask, dx);
  }

  void concat_channels(const ConcatShape& s, const float* a, const float* b, float* out) override {
    cpu::concat_channels(s, a, b, out);
  }
  void split_channels(const ConcatShape& s, const float* in, float* a, float* b) override {
    cpu::split_channels(s, in, a, b);
  }

  void add(std::size_t count, const float* a, const float* b, float* y) override { cpu::add(count, a, b, y); }
  void mul(std::size_t count, const float* a, const float* b, float* y) override { cpu::mul(count, a, b, y); }
  void scale(std::size_t count, const float* a, float s, float* y) override { cpu::scale(count, a, s, y); }
  void scale_by(std::size_t count, const float* a, const float* s, float* y) override {
    cpu::scale(count, a, *s, y);
  }
  void accumulate(std::size_t count, const float* a, float* y) override { cpu::accumulate(count, a, y); }
  void relu_forward(std::size_t count, const float* x, float* y) override { cpu::relu_forward(count, x, y); }
  void relu_backward(std::size_t count, const float* dy, const float* y, float* dx) override {
    cpu::relu_backward(count, dy, y, dx);
  }
  void sigmoid_forward(std::size_t count, const float* x, float* y) override {
    cpu::sigmoid_forward(count, x, y);
  }
  void sigmoid_backward(std::size_t count, const float* dy, const float* y, float* dx) override {
    cpu::sigmoid_backward(count, dy, y, dx);
  }

  void sum(std::size_t count, const float* x, float* out) override { *out = float(cpu::sum(count, x)); }

  void loss_forward(LossKind kind, std::size_t count, const float* input, const float* target,
                    float smooth, float* out) override {
    double loss = 0;
    switch (kind) {
      case LossKind::MSE: loss = cpu::mse_forward(count, input, target); break;
      case LossKind::BCE: loss = cpu::bce_with_logits_forward(count, input, target); break;
      case LossKind::Dice: loss = cpu::soft_dice_forward(count, input, target, smooth); break;
      case LossKind::BCEDice: loss = cpu::bce_dice_forward(count, input, target, smooth); break;
      case LossKind::NegLogIoU: loss = cpu::neg_log_iou_forward(count, input, target, smooth); break;
    }
    *out = float(loss);
  }
  void loss_backward(LossKind kind, std::size_t count, const float* input, const float* target,
                     float smooth, const float* dloss, float* dinput) override {
    switch (kind) {
      case LossKind::MSE: cpu::mse_backward(count, input, target, *dloss, dinput); break;
      case LossKind::BCE: cpu::bce_with_logits_backward(count, input, target, *dloss, dinput); break;
      case LossKind::Dice: cpu::soft_dice_backward(count, input, target, smooth, *dloss, dinput); break;
      case LossKind::BCEDice: cpu::bce_dice_backward(count, input, target, smooth, *dloss, dinput); break;
      case LossKind::NegLogIoU:
        cpu::neg_log_iou_backward(count, input, target, smooth, *dloss, dinput);
        break;
    }
  }

  void adam_update(const AdamParams& a, const std::vector<AdamTensor>& tensors) override {
    for (const AdamTensor& t : tensors) cpu::adam_update(t.count, a, t.param, t.grad, t.m, t.v);
  }

 private:
  CachingAllocator allocator_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace unet
