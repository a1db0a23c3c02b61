// Reverse-mode automatic differentiation.
//
// Each op that sees an input requiring grad records a Node on its output: the inputs, and a small
// closure that, given the gradient of the output, adds gradients to the inputs (flashlight's
// design: the backward of an op sits next to its forward, in the same function). backward()
// orders the nodes topologically and runs the closures from the output back to the leaves.
// Gradients are accumulated out of place, so a gradient handed to two inputs is never mutated.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace unet {

// What a backward closure sees: the op's inputs, and where to put their gradients.
class GradContext {
 public:
  explicit GradContext(const std::vector<Tensor>& inputs)
      : inputs_(inputs), grads_(inputs.size()) {}
  const Tensor& input(std::size_t i) const { return inputs_[i]; }
  // Whether input i wants a gradient: skip the work for those that do not.
  bool needs(std::size_t i) const { return inputs_[i].defined() && inputs_[i].requires_grad(); }
  void add(std::size_t i, const Tensor& grad);
  std::vector<Tensor>& grads() { return grads_; }

 private:
  const std::vector<Tensor>& inputs_;
  std::vector<Tensor> grads_;
};

using BackwardFn = std::function<void(const Tensor& grad_output, GradContext& ctx)>;

struct Node {
  std::string op;
  std::vector<Tensor> inputs;  // may hold undefined tensors (optional arguments such as a bias)
  BackwardFn backward;
};

namespace autograd {

bool grad_enabled();
// True when grad mode is on and one of the inputs requires grad: then the op records a node.
bool needs_graph(std::initializer_list<const Tensor*> inputs);
// Attaches a node to `output`, which then requires grad.
void record(Tensor& output, std::string op, std::vector<Tensor> inputs, BackwardFn backward);
void backward(const Tensor& root, const Tensor& gradient);
// a + b without recording a node (used to accumulate gradients).
Tensor sum_gradients(const Tensor& a, const Tensor& b);

}  // namespace autograd

// Disables graph recording in its scope (inference, optimiser updates, metrics).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace unet
