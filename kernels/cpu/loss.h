// CPU segmentation losses. Each forward returns the scalar loss over the whole batch (every
// element counts once, as Keras' K.flatten-based losses in the reference work do); each backward
// writes d(loss)/d(input) times the upstream gradient dloss. Sums are taken in double.
//
//   mse              mean((p - t)^2)
//   bce_with_logits  mean(max(z, 0) - z t + log(1 + exp(-|z|)))     (stable for any logit z)
//   soft_dice        1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)
//   neg_log_iou      -log((sum(p t) + smooth) / (sum(p) + sum(t) - sum(p t) + smooth))
//   bce_dice         bce_with_logits(z, t) + soft_dice(sigmoid(z), t)
#pragma once

#include <cstddef>

namespace unet::cpu {

template <typename T> double mse_forward(std::size_t count, const T* p, const T* t);
template <typename T> void mse_backward(std::size_t count, const T* p, const T* t, T dloss, T* dp);

template <typename T> double bce_with_logits_forward(std::size_t count, const T* z, const T* t);
template <typename T>
void bce_with_logits_backward(std::size_t count, const T* z, const T* t, T dloss, T* dz);

template <typename T>
double soft_dice_forward(std::size_t count, const T* p, const T* t, T smooth);
template <typename T>
void soft_dice_backward(std::size_t count, const T* p, const T* t, T smooth, T dloss, T* dp);

template <typename T>
double neg_log_iou_forward(std::size_t count, const T* p, const T* t, T smooth);
template <typename T>
void neg_log_iou_backward(std::size_t count, const T* p, const T* t, T smooth, T dloss, T* dp);

template <typename T>
double bce_dice_forward(std::size_t count, const T* z, const T* t, T smooth);
template <typename T>
void bce_dice_backward(std::size_t count, const T* z, const T* t, T smooth, T dloss, T* dz);

}  // namespace unet::cpu
