#include "engine/backend.h"

#include <memory>
#include <stdexcept>

#include "engine/backends/cpu_backend.h"

namespace unet {

std::string to_string(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

std::string to_string(LossKind kind) {
  switch (kind) {
    case LossKind::MSE: return "mse";
    case LossKind::BCE: return "bce";
    case LossKind::Dice: return "dice";
    case LossKind::BCEDice: return "bce_dice";
    case LossKind::NegLogIoU: return "neg_log_iou";
  }
  return "unknown";
}

Backend& backend(Device device) {
  if (device == Device::CPU) {
    // Never destroyed: tensors in static storage may outlive any destruction order we could pick.
    static Backend* cpu = make_cpu_backend().release();
    return *cpu;
  }
  throw std::runtime_error("device cuda: this build has no CUDA backend (configured without nvcc)");
}

}  // namespace unet
