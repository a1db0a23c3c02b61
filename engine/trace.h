// Op records: while an OpRecording is alive on this thread, every op appends what it computed
// (name, output shape, parameters it read, FLOPs). `unet summary` builds its table from one
// recorded forward pass, so the table always describes the model that really runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace unet {

struct OpRecord {
  std::string op;
  Shape output;
  int64_t trainable = 0;      // elements of trainable parameters the op read
  int64_t non_trainable = 0;  // elements of buffers (BN running statistics)
  double flops = 0;           // forward floating-point operations (a multiply-add counts 2)
};

class OpRecording {
 public:
  OpRecording();
  ~OpRecording();
  OpRecording(const OpRecording&) = delete;
  OpRecording& operator=(const OpRecording&) = delete;
  const std::vector<OpRecord>& records() const { return records_; }

 private:
  friend void record_op(OpRecord record);
  std::vector<OpRecord> records_;
  OpRecording* previous_;
};

bool recording_ops();
void record_op(OpRecord record);

}  // namespace unet
