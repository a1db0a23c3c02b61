// The CUDA backend: device memory from a caching allocator over cudaMalloc, one stream, and each
// primitive forwarded to a handwritten kernel launcher (kernels/cuda/) or, for convolutions on a
// real GPU, to cuDNN (cudnn_conv.h, cudnn_conv_transpose.h) where engine_options().conv says so.
//
// Compiled twice (see cuda_backend.h): with UNET_CUDA_EMULATION the runtime calls and launches
// go to the CPU emulation layer and cuDNN is absent, so convolutions use the handwritten kernels.
#include "engine/backends/cuda_backend.h"

#include <cstring>
#include <vector>

#include "engine/backends/cuda_check.h"
#include "engine/options.h"
#include "kernels/cuda/kernels.h"

#if !defined(UNET_CUDA_EMULATION)
#include "engine/backends/conv_choice.h"
#include "engine/backends/cudnn_conv.h"
#include "engine/backends/cudnn_conv_transpose.h"
#endif

namespace unet::UNET_CUDA_NS {
namespace {

namespace k = unet::UNET_CUDA_NS;

class CudaBackend final : public Backend {
 public:
  CudaBackend()
      : allocator_(
            [](std::size_t bytes) -> void* {
              void* ptr = nullptr;
              // nullptr (not an exception) lets the allocator free its cache and retry.
              return cudaMalloc(&ptr, bytes) == cudaSuccess ? ptr : (cudaGetLastError(), nullptr);
            },
            [](void* ptr) { cudaFree(ptr); }) {
    UNET_CUDA_CHECK(cudaStreamCreate(&stream_));
#if !defined(UNET_CUDA_EMULATION)
    cudnn_ = std::make_unique<CudnnConv>(stream_, allocator_);
    cudnn_transpose_ = std::make_unique<CudnnConvTranspose>(*cudnn_, allocator_);
#endif
  }
  ~CudaBackend() override {
#if !defined(UNET_CUDA_EMULATION)
    cudnn_transpose_.reset();
    cudnn_.reset();
#endif
    if (adam_table_) allocator_.deallocate(adam_table_, adam_table_capacity_);
    if (workspace_) allocator_.deallocate(workspace_, workspace_capacity_);
    allocator_.release_cached();
    cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::CUDA; }
  CachingAllocator& allocator() override { return allocator_; }
  void synchronize() override { UNET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void copy_from_host(void* dst, const void* src, std::size_t bytes) override {
    UNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    synchronize();  // the caller may reuse its host buffer as soon as we return
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    UNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    if (bytes) UNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill(std::size_t count, float value, float* y) override { k::fill(count, value, y, stream_); }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      float* y) override {
#if !defined(UNET_CUDA_EMULATION)
    if (use_cudnn(s, ConvPass::Forward)) return cudnn_->forward(s, x, w, bias, y);
#endif
    k::conv2d_forward(s, x, w, bias, y, stream_);
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w,
                            float* dx) override {
#if !defined(UNET_CUDA_EMULATION)
    if (use_cudnn(s, ConvPass::BackwardData)) return cudnn_->backward_data(s, dy, w, dx);
#endif
    k::conv2d_backward_data(s, dy, w, dx, stream_);
  }
  void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                              float* dbias) override {
#if !defined(UNET_CUDA_EMULATION)
    if (use_cudnn(s, ConvPass::BackwardFilter)) return cudnn_->backward_filter(s, x, dy, dw, dbias);
#endif
    k::conv2d_backward_filter(s, x, dy, dw, dbias, workspace(k::conv2d_backward_filter_workspace(s)), stream_);
  }
  void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                                const float* bias, float* y) override {
#if !defined(UNET_CUDA_EMULATION)
    if (use_cudnn(s)) return cudnn_transpose_->forward(s, x, w, bias, y);
#endif
    k::conv_transpose2d_forward(s, x, w, bias, y, stream_);
  }
  void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy,
                                      const float* w, float* dx) override {
#if !defined(UNET_CUDA_EMULATION)
    if (use_cudnn(s)) return cudnn_transpose_->backward_data(s, dy, w, dx);
#endif
    k::conv_transpose2d_backward_data(s, dy, w, dx, stream_);
  }
  void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x,
                                        const float* dy, float* dw, float* dbias) override {
#if !defined(UNET_CUDA_EMULATION)
    if (use_cudnn(s)) return cudnn_transpose_->backward_filter(s, x, dy, dw, dbias);
#endif
    k::conv_transpose2d_backward_filter(s, x, dy, dw, dbias, workspace(k::conv_transpose2d_backward_filter_workspace(s)),
                                        stream_);
  }

  void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, float* y, float* save_mean, float* save_invstd,
                               bool relu) override {
    k::batchnorm_forward_train(s, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                               save_mean, save_invstd, relu, stream_);
  }
  void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean,
                               const float* running_var, float eps, float* y, bool relu) override {
    k::batchnorm_forward_infer(s, x, gamma, beta, running_mean, running_var, eps, y, relu, stream_);
  }
  void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x,
                                const float* y, const float* gamma, const float* save_mean,
                                const float* save_invstd, float* dx, float* dgamma, float* dbeta,
                                bool relu) override {
    k::batchnorm_backward_train(s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                                relu, stream_);
  }
  void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x,
                                const float* y, const float* gamma, const float* running_mean,
                                const float* running_var, float eps, float* dx, float* dgamma,
                                float* dbeta, bool relu) override {
    k::batchnorm_backward_infer(s, dy, x, y, gamma, running_mean, running_var, eps, dx, dgamma,
                                dbeta, relu, stream_);
  }

  void maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y,
                          uint8_t* argmax) override {
    k::maxpool2x2_forward(s, x, y, argmax, stream_);
  }
  void maxpool2x2_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax,
                           float* dx) override {
    k::maxpool2x2_backward(s, dy, argmax, dx, stream_);
  }

  void dropout_forward(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x,
                       float* y, uint8_t* mask) override {
    k::dropout_forward(count, p, seed, offset, x, y, mask, stream_);
  }
  void dropout_backward(std::size_t count, float p, const float* dy, const uint8_t* mask,
                        float* dx) override {
    k::dropout_backward(count, p, dy, mask, dx, stream_);
  }

  void concat_channels(const ConcatShape& s, const float* a, const float* b, float* out) override {
    k::concat_channels(s, a, b, out, stream_);
  }
  void split_channels(const ConcatShape& s, const float* in, float* a, float* b) override {
    k::split_channels(s, in, a, b, stream_);
  }

  void add(std::size_t count, const float* a, const float* b, float* y) override { k::add(count, a, b, y, stream_); }
  void mul(std::size_t count, const float* a, const float* b, float* y) override { k::mul(count, a, b, y, stream_); }
  void scale(std::size_t count, const float* a, float s, float* y) override { k::scale(count, a, s, y, stream_); }
  void scale_by(std::size_t count, const float* a, const float* s, float* y) override {
    k::scale_by(count, a, s, y, stream_);
  }
  void accumulate(std::size_t count, const float* a, float* y) override { k::accumulate(count, a, y, stream_); }
  void relu_forward(std::size_t count, const float* x, float* y) override { k::relu_forward(count, x, y, stream_); }
  void relu_backward(std::size_t count, const float* dy, const float* y, float* dx) override {
    k::relu_backward(count, dy, y, dx, stream_);
  }
  void sigmoid_forward(std::size_t count, const float* x, float* y) override {
    k::sigmoid_forward(count, x, y, stream_);
  }
  void sigmoid_backward(std::size_t count, const float* dy, const float* y, float* dx) override {
    k::sigmoid_backward(count, dy, y, dx, stream_);
  }

  void sum(std::size_t count, const float* x, float* out) override { k::sum(count, x, out, stream_); }
  void loss_forward(LossKind kind, std::size_t count, const float* input, const float* target,
                    float smooth, float* out) override {
    k::loss_forward(kind, count, input, target, smooth, out, stream_);
  }
  void loss_backward(LossKind kind, std::size_t count, const float* input, const float* target,
                     float smooth, const float* dloss, float* dinput) override {
    k::loss_backward(kind, count, input, target, smooth, dloss, dinput, stream_);
  }

  void adam_update(const AdamParams& a, const std::vector<AdamTensor>& tensors) override {
    // The kernel reads the table from device memory: one small upload, then one launch for all
    // parameters.
    const std::size_t bytes = tensors.size() * sizeof(AdamTensor);
    if (bytes > adam_table_capacity_) {
      if (adam_table_) allocator_.deallocate(adam_table_, adam_table_capacity_);
      adam_table_ = allocator_.allocate(bytes, &adam_table_capacity_);
    }
    UNET_CUDA_CHECK(cudaMemcpyAsync(adam_table_, tensors.data(), bytes, cudaMemcpyHostToDevice, stream_));
    k::adam_update(a, tensors.data(), static_cast<const AdamTensor*>(adam_table_), int(tensors.size()),
                   stream_);
  }

 private:
#if !defined(UNET_CUDA_EMULATION)
  // cuDNN where engine_options().conv asks for it and it can express the shape (it pads
  // symmetrically: asymmetric 'same' padding takes our kernels); Auto asks conv_choice.h.
  bool use_cudnn(const Conv2dShape& s, ConvPass pass) const {
    switch (engine_options().conv) {
      case ConvImpl::Handwritten: return false;
      case ConvImpl::Cudnn: return CudnnConv::supports(s);
      case ConvImpl::Auto: return CudnnConv::supports(s) && cudnn_is_faster(s, pass);
    }
    return false;
  }
  bool use_cudnn(const ConvTranspose2dShape& s) const {
    return engine_options().conv == ConvImpl::Cudnn && CudnnConvTranspose::supports(s);
  }
#endif

  // Scratch for handwritten kernels that need it, grown on demand. Stream order makes reuse
  // safe: a later kernel on the stream starts after the earlier one is done with it.
  float* workspace(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    if (bytes > workspace_capacity_) {
      if (workspace_) allocator_.deallocate(workspace_, workspace_capacity_);
      workspace_ = allocator_.allocate(bytes, &workspace_capacity_);
    }
    return static_cast<float*>(workspace_);
  }

  CachingAllocator allocator_;
  cudaStream_t stream_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_capacity_ = 0;
  void* adam_table_ = nullptr;
  std::size_t adam_table_capacity_ = 0;
#if !defined(UNET_CUDA_EMULATION)
  std::unique_ptr<CudnnConv> cudnn_;
  std::unique_ptr<CudnnConvTranspose> cudnn_transpose_;
#endif
};

}  // namespace

std::unique_ptr<Backend> make_backend() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    throw std::runtime_error(std::string("no usable CUDA GPU (") +
                             (status != cudaSuccess ? cudaGetErrorString(status) : "no device found") + ")");
  }
  return std::make_unique<CudaBackend>();
}

}  // namespace unet::UNET_CUDA_NS
