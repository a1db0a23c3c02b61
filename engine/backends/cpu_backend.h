#pragma once

#include <memory>

#include "engine/backend.h"

namespace unet {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace unet
