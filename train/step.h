// One optimisation step, shared by the trainer, `unet profile` and the end-to-end benchmarks so
// that all three measure the same work.
#pragma once

#include "engine/backend.h"
#include "engine/tensor.h"
#include "models/unet.h"
#include "train/adam.h"

namespace unet {

// The training loss of logits against a 0/1 mask: BCE and BCE+Dice take the logits, the other
// losses the sigmoid probabilities (the reference model's output).
Tensor segmentation_loss(LossKind kind, const Tensor& logits, const Tensor& mask);

// Forward, loss and backward, each a named ProfileRange (engine/profiler.h): the gradients are
// left in the parameters for an update. Returns the loss, still on the model's device (item()
// waits for it).
Tensor compute_gradients(UNet& model, Adam& adam, LossKind kind, const Tensor& image, const Tensor& mask);

// compute_gradients and one Adam update (ProfileRange "adam").
Tensor train_step(UNet& model, Adam& adam, LossKind kind, const Tensor& image, const Tensor& mask);

}  // namespace unet
