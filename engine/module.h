// Module: a named tree of parameters (trainable tensors), buffers (state such as BN running
// statistics) and child modules, with a train / eval switch.
//
// Subclasses keep their tensors as members and register the members' addresses, so moving a
// module to another device or loading a checkpoint updates the members in place. That is also
// why modules cannot be copied.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace unet {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Dotted names in registration order, e.g. "enc0.conv1.weight".
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;
  int64_t buffer_count() const;

  void zero_grad();
  // Moves every parameter and buffer to `device` (gradients are dropped).
  void to(Device device);
  Device device() const;

 protected:
  void register_parameter(std::string name, Tensor* member);
  void register_buffer(std::string name, Tensor* member);
  void register_module(std::string name, Module* child);

 private:
  void collect(const std::string& prefix, bool parameters, NamedTensors& out) const;
  void for_each_tensor(const std::function<void(Tensor&)>& f);

  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
};

}  // namespace unet
