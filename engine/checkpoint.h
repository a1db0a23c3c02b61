// Checkpoint files: named float32 tensors plus string metadata (the model config, and later the
// optimiser and run state), in one self-checking binary file.
//
// Layout (little-endian):
//   "UNETCKPT"  u32 version  u64 payload_bytes
//   payload:  u32 meta_count   { u32 len, key bytes, u32 len, value bytes } * meta_count
//             u32 tensor_count { u32 len, name bytes, u32 ndim, i64 dims[ndim], f32 data[] } * count
//   u32 crc32 of everything before it
// payload_bytes lets a reader tell a truncated file from a corrupt one. Files are written to a
// temporary name in the same folder, flushed to disk, then renamed over the target, so a crash
// never leaves a half-written checkpoint under the real name.
#pragma once

#include <map>
#include <stdexcept>
#include <string>

#include "engine/module.h"

namespace unet {

class CheckpointError : public std::runtime_error {
 public:
  CheckpointError(const std::string& path, const std::string& problem)
      : std::runtime_error("checkpoint " + path + ": " + problem) {}
};

struct Checkpoint {
  std::map<std::string, std::string> meta;
  NamedTensors tensors;  // on the CPU after loading
};

inline constexpr uint32_t kCheckpointVersion = 1;

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);
Checkpoint load_checkpoint(const std::string& path);

// The module's parameters and buffers, named prefix + their dotted name.
NamedTensors module_state(const Module& module, const std::string& prefix);
// Copies every parameter and buffer of `module` from the checkpoint tensors named with `prefix`
// (others, such as optimiser state, are left alone). A missing, extra or differently shaped
// tensor is a CheckpointError that names it, and leaves the module untouched.
void load_module_state(Module& module, const Checkpoint& checkpoint, const std::string& prefix,
                       const std::string& path);

}  // namespace unet
