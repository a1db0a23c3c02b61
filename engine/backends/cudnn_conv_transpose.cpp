#include "engine/backends/cudnn_conv_transpose.h"

#include "engine/backends/cuda_check.h"

namespace unet::cuda {

// y's shape packed, the same dimensions as a strided window of the convolution's image, and the
// bias: the descriptors of the crop, the pad and the bias passes.
struct CudnnConvTranspose::Views {
  explicit Views(const ConvTranspose2dShape& s) {
    const Conv2dShape c = conv_of_transpose(s);
    UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&packed));
    UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&window));
    UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    UNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(packed, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c_out, s.h_out, s.w_out));
    const int plane = c.h_in * c.w_in;
    UNET_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(window, CUDNN_DATA_FLOAT, s.n, s.c_out, s.h_out, s.w_out,
                                                  s.c_out * plane, plane, c.w_in, 1));
    UNET_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.c_out, 1, 1));
  }
  ~Views() {
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyTensorDescriptor(window);
    cudnnDestroyTensorDescriptor(packed);
  }
  Views(const Views&) = delete;
  Views& operator=(const Views&) = delete;

  cudnnTensorDescriptor_t packed = nullptr, window = nullptr, bias = nullptr;
};

CudnnConvTranspose::CudnnConvTranspose(CudnnConv& conv, CachingAllocator& allocator)
    : conv_(conv), allocator_(allocator) {}

CudnnConvTranspose::~CudnnConvTranspose() {
  views_.clear();
  if (buffer_) allocator_.deallocate(buffer_, buffer_capacity_);
}

bool CudnnConvTranspose::supports(const ConvTranspose2dShape& s) {
  const Conv2dShape c = conv_of_transpose(s);
  return c.h_in >= s.h_out && c.w_in >= s.w_out && CudnnConv::supports(c);
}

CudnnConvTranspose::Views& CudnnConvTranspose::views(const ConvTranspose2dShape& s) {
  const std::array<int, 12> key{s.n, s.c_in, s.h_in, s.w_in, s.c_out, s.kh, s.kw, s.stride, s.pad_top, s.pad_left, s.h_out, s.w_out};
  auto& slot = views_[key];
  if (!slot) slot = std::make_unique<Views>(s);
  return *slot;
}

float* CudnnConvTranspose::image(const ConvTranspose2dShape& s, bool zeroed) {
  const Conv2dShape c = conv_of_transpose(s);
  if (c.h_in == s.h_out && c.w_in == s.w_out) return nullptr;
  const std::size_t bytes = std::size_t(c.n) * c.c_in * c.h_in * c.w_in * sizeof(float);
  if (bytes > buffer_capacity_) {
    // Stream order makes this safe, as for CudnnConv's workspace.
    if (buffer_) allocator_.deallocate(buffer_, buffer_capacity_);
    buffer_ = allocator_.allocate(bytes, &buffer_capacity_);
  }
  if (zeroed) {
    cudaStream_t stream = nullptr;
    UNET_CUDNN_CHECK(cudnnGetStream(conv_.handle(), &stream));
    UNET_CUDA_CHECK(cudaMemsetAsync(buffer_, 0, bytes, stream));
  }
  return static_cast<float*>(buffer_);
}

void CudnnConvTranspose::forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                                 const float* bias, float* y) {
  const Views& v = views(s);
  const float one = 1.0f, zero = 0.0f;
  float* full = image(s, false);
  conv_.backward_data(conv_of_transpose(s), x, w, full ? full : y);
  if (full) UNET_CUDNN_CHECK(cudnnTransformTensor(conv_.handle(), &one, v.window, full, &zero, v.packed, y));
  if (bias) UNET_CUDNN_CHECK(cudnnAddTensor(conv_.handle(), &one, v.bias, bias, &one, v.packed, y));
}

void CudnnConvTranspose::backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                       float* dx) {
  const Views& v = views(s);
  const float one = 1.0f, zero = 0.0f;
  float* full = image(s, true);
  if (full) UNET_CUDNN_CHECK(cudnnTransformTensor(conv_.handle(), &one, v.packed, dy, &zero, v.window, full));
  conv_.forward(conv_of_transpose(s), full ? full : dy, w, nullptr, dx);
}

void CudnnConvTranspose::backward_filter(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                         float* dw, float* dbias) {
  const Views& v = views(s);
  const float one = 1.0f, zero = 0.0f;
  float* full = image(s, true);
  if (full) UNET_CUDNN_CHECK(cudnnTransformTensor(conv_.handle(), &one, v.packed, dy, &zero, v.window, full));
  conv_.backward_filter(conv_of_transpose(s), full ? full : dy, x, dw, nullptr);
  if (dbias) UNET_CUDNN_CHECK(cudnnConvolutionBackwardBias(conv_.handle(), &one, v.packed, dy, &zero, v.bias, dbias));
}

}  // namespace unet::cuda
