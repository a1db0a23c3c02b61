#include "train/step.h"

#include "engine/ops.h"
#include "engine/profiler.h"

namespace unet {

Tensor segmentation_loss(LossKind kind, const Tensor& logits, const Tensor& mask) {
  const bool takes_logits = kind == LossKind::BCE || kind == LossKind::BCEDice;
  return ops::loss(kind, takes_logits ? logits : ops::sigmoid(logits), mask);
}

Tensor compute_gradients(UNet& model, Adam& adam, LossKind kind, const Tensor& image, const Tensor& mask) {
  Tensor loss;
  {
    ProfileRange range("forward");
    loss = segmentation_loss(kind, model.forward(image), mask);
  }
  {
    ProfileRange range("backward");
    adam.zero_grad();
    loss.backward();
  }
  return loss;
}

Tensor train_step(UNet& model, Adam& adam, LossKind kind, const Tensor& image, const Tensor& mask) {
  const Tensor loss = compute_gradients(model, adam, kind, image, mask);
  {
    ProfileRange range("adam");
    adam.step();
  }
  return loss;
}

}  // namespace unet
