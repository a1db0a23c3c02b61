// CPU convolution kernels: conv2d and conv_transpose2d, forward and both backward passes.
//
// Templated on the scalar type: float is what the engine runs; double exists so that tests can
// check gradients against finite differences without float round-off. Outputs are overwritten,
// never accumulated: the autograd layer adds gradients itself.
#pragma once

#include "kernels/shapes.h"

namespace unet::cpu {

using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;

// y = conv(x, w) + bias. bias may be null.
template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y);
// dx = d(loss)/dx given dy.
template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx);
// dw (and dbias unless null) given x and dy, summed over the batch.
template <typename T>
void conv2d_backward_filter(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* dbias);

template <typename T>
void conv_transpose2d_forward(const ConvTranspose2dShape& s, const T* x, const T* w, const T* bias,
                              T* y);
template <typename T>
void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const T* dy, const T* w, T* dx);
template <typename T>
void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const T* x, const T* dy, T* dw,
                                      T* dbias);

}  // namespace unet::cpu
