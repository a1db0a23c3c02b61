// Argument checks shared by the ops: each failure says which op, which argument, and the shapes.
#pragma once

#include <stdexcept>
#include <string>

#include "engine/tensor.h"

namespace unet::ops {

inline void check(bool ok, const char* op, const std::string& message) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + message);
}

inline void check_defined(const Tensor& t, const char* op, const char* name) {
  check(t.defined(), op, std::string("argument '") + name + "' is undefined");
}

inline void check_ndim(const Tensor& t, int ndim, const char* op, const char* name) {
  check_defined(t, op, name);
  check(t.ndim() == ndim, op,
        std::string("argument '") + name + "' must have " + std::to_string(ndim) +
            " dimensions, got shape " + to_string(t.shape()));
}

inline void check_same_device(const Tensor& a, const Tensor& b, const char* op, const char* name_a,
                              const char* name_b) {
  check(a.device() == b.device(), op,
        std::string("'") + name_a + "' is on " + to_string(a.device()) + " but '" + name_b +
            "' is on " + to_string(b.device()));
}

inline void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* name_a,
                             const char* name_b) {
  check(a.shape() == b.shape(), op,
        std::string("'") + name_a + "' has shape " + to_string(a.shape()) + " but '" + name_b +
            "' has shape " + to_string(b.shape()));
  check_same_device(a, b, op, name_a, name_b);
}

inline int as_int(int64_t v) { return static_cast<int>(v); }

}  // namespace unet::ops
