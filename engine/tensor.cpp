#include "engine/tensor.h"

#include <sstream>
#include <stdexcept>

#include "engine/autograd.h"

namespace unet {

std::string to_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Storage::Storage(Device device, std::size_t bytes) : device_(device), bytes_(bytes) {
  if (bytes > 0) data_ = backend(device).allocator().allocate(bytes, &capacity_);
}

Storage::~Storage() {
  if (data_) backend(device_).allocator().deallocate(data_, capacity_);
}

Tensor Tensor::empty(const Shape& shape, Device device) {
  for (int64_t d : shape) {
    if (d < 0) throw std::invalid_argument("Tensor::empty: negative dimension in " + to_string(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<Storage>(device, std::size_t(unet::numel(shape)) * sizeof(float));
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, device);
  backend(device).fill(std::size_t(t.numel()), value, t.data());
  return t;
}

Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
  if (int64_t(values.size()) != unet::numel(shape)) {
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) +
                                " values for shape " + to_string(shape));
  }
  Tensor t = empty(shape, device);
  backend(device).copy_from_host(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

int64_t Tensor::size(int i) const {
  const int n = ndim();
  const int k = i < 0 ? i + n : i;
  if (k < 0 || k >= n) {
    throw std::out_of_range("Tensor::size: dimension " + std::to_string(i) + " of a tensor of shape " +
                            to_string(shape()));
  }
  return impl_->shape[std::size_t(k)];
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> out(static_cast<std::size_t>(numel()));
  backend(device()).copy_to_host(out.data(), data(), out.size() * sizeof(float));
  return out;
}

float Tensor::item() const {
  if (numel() != 1) {
    throw std::invalid_argument("Tensor::item: tensor of shape " + to_string(shape()) +
                                " has more than one element");
  }
  return to_vector()[0];
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor out = empty(shape(), target);
  const std::size_t bytes = std::size_t(numel()) * sizeof(float);
  if (device() == Device::CPU) {
    backend(target).copy_from_host(out.data(), data(), bytes);
  } else if (target == Device::CPU) {
    backend(device()).copy_to_host(out.data(), data(), bytes);
  } else {
    out = to(Device::CPU).to(target);
  }
  return out;
}

void Tensor::copy_from(const Tensor& other) {
  if (other.shape() != shape()) {
    throw std::invalid_argument("Tensor::copy_from: source shape " + to_string(other.shape()) +
                                " differs from destination shape " + to_string(shape()));
  }
  const Tensor src = other.to(device());
  backend(device()).copy(data(), src.data(), std::size_t(numel()) * sizeof(float));
}

Tensor& Tensor::set_requires_grad(bool on) {
  if (on && !is_leaf()) {
    throw std::logic_error("set_requires_grad: only leaf tensors can be made to require grad");
  }
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = impl_->shape;
  impl->storage = impl_->storage;
  return Tensor(std::move(impl));
}

void Tensor::backward(const Tensor& gradient) const { autograd::backward(*this, gradient); }

}  // namespace unet
