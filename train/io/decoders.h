// The image decoders behind read_image (image.h), one file each. Each takes the file's bytes and
// its path (for messages), checks the declared size against the decoded-size limit (files.h)
// before allocating pixels, and returns interleaved samples as stored.
//
// Why these libraries: PNG and JPEG come from the outside world, so their decoders are the ones
// that upstream fuzzes continuously (libspng and libjpeg-turbo, both in OSS-Fuzz); the system
// stb_image 2.27 has known out-of-bounds reads on crafted JPEGs, so it decodes only BMP here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/io/image.h"

namespace unet::io::detail {

Image decode_png(const std::string& path, const std::vector<uint8_t>& bytes);
Image decode_jpeg(const std::string& path, const std::vector<uint8_t>& bytes);

}  // namespace unet::io::detail
