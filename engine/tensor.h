// Tensor: a float32 array with a shape (NCHW for images), a device, and autograd state.
//
// A Tensor is a cheap handle to a shared TensorImpl; copies alias. Storage comes from the device
// backend's caching allocator and is refcounted, so a tensor saved for the backward pass stays
// alive exactly as long as the graph that needs it. Tensors are always dense and contiguous:
// every kernel can take a raw pointer and a shape, which keeps kernels free of engine types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace unet {

using Shape = std::vector<int64_t>;
std::string to_string(const Shape& shape);
int64_t numel(const Shape& shape);

// Bytes on one device, returned to its allocator when the last user lets go.
class Storage {
 public:
  Storage(Device device, std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Device device_;
  std::size_t bytes_;
  std::size_t capacity_ = 0;
  void* data_ = nullptr;
};

struct Node;

struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage> storage;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor, if recorded
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised memory: for outputs that a kernel overwrites in full.
  static Tensor empty(const Shape& shape, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device device = Device::CPU);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  int ndim() const { return int(impl_->shape.size()); }
  // Size of dimension i; negative i counts from the end.
  int64_t size(int i) const;
  int64_t numel() const { return unet::numel(impl_->shape); }
  Device device() const { return impl_->storage->device(); }
  float* data() const { return static_cast<float*>(impl_->storage->data()); }

  std::vector<float> to_vector() const;
  float item() const;  // the value of a one-element tensor
  Tensor to(Device device) const;
  void copy_from(const Tensor& other);  // overwrites the data in place; shapes must match

  // Autograd.
  bool requires_grad() const { return impl_->requires_grad; }
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const { return impl_->grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl_->grad); }
  void set_grad(const Tensor& grad) { impl_->grad = grad.impl_; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  // The same storage, cut from the graph: used to save outputs for backward without a cycle.
  Tensor detach() const;
  // Back-propagates from this one-element tensor (or with an explicit gradient of its shape).
  void backward(const Tensor& gradient = Tensor()) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace unet
