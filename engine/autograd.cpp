#include "engine/autograd.h"

#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

namespace unet {
namespace {

thread_local bool g_grad_enabled = true;

// Nodes reachable from root, each after all nodes that consume its output (reverse postorder of
// an iterative depth-first search, so deep graphs cannot overflow the stack).
std::vector<TensorImpl*> topological_order(TensorImpl* root) {
  std::vector<TensorImpl*> postorder;
  std::unordered_set<TensorImpl*> visited;
  std::vector<std::pair<TensorImpl*, std::size_t>> stack{{root, 0}};
  visited.insert(root);
  while (!stack.empty()) {
    auto& [impl, next_input] = stack.back();
    const auto& inputs = impl->grad_fn->inputs;
    if (next_input < inputs.size()) {
      TensorImpl* child = inputs[next_input++].impl();
      if (child && child->grad_fn && child->requires_grad && visited.insert(child).second) {
        stack.emplace_back(child, 0);
      }
    } else {
      postorder.push_back(impl);
      stack.pop_back();
    }
  }
  return {postorder.rbegin(), postorder.rend()};
}

}  // namespace

void GradContext::add(std::size_t i, const Tensor& grad) {
  if (grad.shape() != inputs_[i].shape()) {
    throw std::logic_error("autograd: gradient of shape " + to_string(grad.shape()) +
                           " for an input of shape " + to_string(inputs_[i].shape()));
  }
  grads_[i] = grads_[i].defined() ? autograd::sum_gradients(grads_[i], grad) : grad;
}

namespace autograd {

bool grad_enabled() { return g_grad_enabled; }

bool needs_graph(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

void record(Tensor& output, std::string op, std::vector<Tensor> inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->op = std::move(op);
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
}

Tensor sum_gradients(const Tensor& a, const Tensor& b) {
  Tensor out = Tensor::empty(a.shape(), a.device());
  backend(a.device()).add(std::size_t(a.numel()), a.data(), b.data(), out.data());
  return out;
}

void backward(const Tensor& root, const Tensor& gradient) {
  if (!root.requires_grad()) {
    throw std::logic_error("backward: the tensor does not require grad (no parameter or input "
                           "that requires grad contributed to it, or grad mode was off)");
  }
  Tensor seed = gradient;
  if (!seed.defined()) {
    if (root.numel() != 1) {
      throw std::invalid_argument("backward: a tensor of shape " + to_string(root.shape()) +
                                  " needs an explicit gradient; only scalars default to 1");
    }
    seed = Tensor::full(root.shape(), 1.0f, root.device());
  } else if (seed.shape() != root.shape()) {
    throw std::invalid_argument("backward: gradient shape " + to_string(seed.shape()) +
                                " differs from the tensor's " + to_string(root.shape()));
  }

  auto deliver = [](TensorImpl* target, Tensor grad, auto& pending) {
    if (target->grad_fn) {
      Tensor& slot = pending[target];
      slot = slot.defined() ? sum_gradients(slot, grad) : grad;
    } else if (target->requires_grad) {
      target->grad = target->grad ? sum_gradients(Tensor(target->grad), grad).impl_ptr()
                                  : grad.impl_ptr();
    }
  };

  NoGradGuard no_grad;  // the backward pass itself is not differentiated
  std::unordered_map<TensorImpl*, Tensor> pending;
  if (!root.grad_fn()) {
    deliver(root.impl(), seed, pending);
    return;
  }
  pending[root.impl()] = seed;
  for (TensorImpl* impl : topological_order(root.impl())) {
    auto it = pending.find(impl);
    if (it == pending.end()) continue;
    const Tensor grad_output = std::move(it->second);
    pending.erase(it);  // frees each intermediate gradient as soon as it has been used
    Node& node = *impl->grad_fn;
    GradContext ctx(node.inputs);
    node.backward(grad_output, ctx);
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      if (ctx.grads()[i].defined() && ctx.needs(i)) deliver(node.inputs[i].impl(), ctx.grads()[i], pending);
    }
  }
}

}  // namespace autograd

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

}  // namespace unet
