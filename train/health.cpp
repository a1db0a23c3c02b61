#include "train/health.h"

#include <cmath>
#include <vector>

namespace unet {
namespace {

// The index of the first non-finite value, or -1.
long first_bad(const Tensor& t) {
  const std::vector<float> values = t.to_vector();
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) return long(i);
  return -1;
}

// "buffer 'enc0.bn1.running_var'[3] = inf"
std::string described(const std::string& what, const std::string& name, const Tensor& t, long index) {
  return what + " '" + name + "'[" + std::to_string(index) + "] = " + std::to_string(t.to_vector()[std::size_t(index)]);
}

}  // namespace

std::optional<std::string> first_non_finite(const Module& model, double loss) {
  if (!std::isfinite(loss)) return "loss = " + std::to_string(loss);
  const NamedTensors parameters = model.named_parameters();
  for (const auto& [name, p] : parameters) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    if (long i = first_bad(g); i >= 0) return described("gradient of", name, g, i);
  }
  for (const auto& [name, p] : parameters)
    if (long i = first_bad(p); i >= 0) return described("parameter", name, p, i);
  for (const auto& [name, b] : model.named_buffers())
    if (long i = first_bad(b); i >= 0) return described("buffer", name, b, i);
  return std::nullopt;
}

}  // namespace unet
