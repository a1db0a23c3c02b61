#include "engine/trace.h"

namespace unet {
namespace {
thread_local OpRecording* g_recording = nullptr;
}

OpRecording::OpRecording() : previous_(g_recording) { g_recording = this; }
OpRecording::~OpRecording() { g_recording = previous_; }

bool recording_ops() { return g_recording != nullptr; }

void record_op(OpRecord record) {
  if (g_recording) g_recording->records_.push_back(std::move(record));
}

}  // namespace unet
