// CPU channel concatenation of two NCHW tensors, and its inverse (which is also its backward).
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu {

using kernels::ConcatShape;

template <typename T>
void concat_channels(const ConcatShape& s, const T* a, const T* b, T* out);
template <typename T>
void split_channels(const ConcatShape& s, const T* in, T* a, T* b);

}  // namespace unet::cpu
