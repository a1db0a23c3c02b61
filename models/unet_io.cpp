// Saving and loading a U-Net with its config, so a checkpoint alone is enough to predict.
#include "engine/checkpoint.h"
#include "models/unet.h"

namespace unet {
namespace {
const std::string kPrefix = "model.";
}

void save_unet(const std::string& path, const UNet& model,
               const std::map<std::string, std::string>& extra_meta) {
  Checkpoint ck;
  ck.meta = extra_meta;
  for (const auto& [key, value] : model.config().to_map()) ck.meta[kPrefix + key] = value;
  ck.tensors = module_state(model, kPrefix);
  save_checkpoint(path, ck);
}

std::unique_ptr<UNet> load_unet(const std::string& path) { return load_unet(load_checkpoint(path), path); }

std::unique_ptr<UNet> load_unet(const Checkpoint& ck, const std::string& path) {
  std::map<std::string, std::string> config;
  for (const auto& [key, value] : ck.meta) {
    if (key.starts_with(kPrefix)) config[key.substr(kPrefix.size())] = value;
  }
  if (config.empty()) throw CheckpointError(path, "holds no model config (no 'model.*' metadata)");
  UNetConfig parsed;
  try {
    parsed = UNetConfig::from_map(config);
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(path, e.what());
  }
  auto model = std::make_unique<UNet>(parsed, 0);
  load_module_state(*model, ck, kPrefix, path);
  return model;
}

}  // namespace unet
