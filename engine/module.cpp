#include "engine/module.h"

#include <functional>
#include <stdexcept>

namespace unet {

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::register_parameter(std::string name, Tensor* member) {
  member->set_requires_grad(true);
  parameters_.emplace_back(std::move(name), member);
}

void Module::register_buffer(std::string name, Tensor* member) {
  buffers_.emplace_back(std::move(name), member);
}

void Module::register_module(std::string name, Module* child) {
  children_.emplace_back(std::move(name), child);
}

void Module::collect(const std::string& prefix, bool parameters, NamedTensors& out) const {
  for (const auto& [name, t] : parameters ? parameters_ : buffers_) out.emplace_back(prefix + name, *t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

int64_t Module::buffer_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_buffers()) n += t.numel();
  return n;
}

void Module::zero_grad() {
  for (auto& t : parameters()) t.set_grad(Tensor());
}

void Module::for_each_tensor(const std::function<void(Tensor&)>& f) {
  for (auto& [name, t] : parameters_) f(*t);
  for (auto& [name, t] : buffers_) f(*t);
  for (auto& [name, child] : children_) child->for_each_tensor(f);
}

void Module::to(Device target) {
  for_each_tensor([target](Tensor& t) {
    const bool trainable = t.requires_grad();
    t = t.to(target).detach();
    t.set_requires_grad(trainable);
  });
}

Device Module::device() const {
  const auto params = named_parameters();
  if (params.empty()) throw std::logic_error("Module::device: the module has no parameters");
  return params.front().second.device();
}

}  // namespace unet
