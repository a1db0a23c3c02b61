// 2D images: the slices of slice-based datasets (the LGG set ships 256x256 RGB TIFF slices with
// single-channel TIFF masks) and PNG output for looking at predictions.
//
// The reader is chosen by extension (case-insensitive):
//   .png                  libspng; 16-bit PNGs keep their 16 bits; palette PNGs come out as
//                         RGB(A), 1/2/4-bit grey is scaled to 0..255, tRNS becomes alpha.
//   .jpg .jpeg            libjpeg-turbo; grey stays one channel, other colour spaces are RGB.
//   .bmp                  stb_image.
//   .tif .tiff            libtiff: unsigned 8- or 16-bit samples, 1 to 4 per pixel, interleaved
//                         (PLANARCONFIG_CONTIG), in strips or tiles, any compression libtiff
//                         decodes; MINISWHITE is inverted so that larger always means brighter.
//                         Only the first image of a multi-page file is read.
// Pixel values stay as stored (0..255 or 0..65535, see `bits`): normalising is the dataset's
// decision, and a mask of {0, 255} must remain recognisable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/io/files.h"

namespace unet::io {

struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<float> pixels;  // HWC: channel fastest, then x, then y (row 0 at the top)
  int bits = 8;               // 8 or 16: the stored sample depth
};

Image read_image(const std::string& path);

// An 8-bit PNG of `channels` (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) interleaved samples per
// pixel, rows top to bottom without padding. Atomic (see files.h).
void write_png(const std::string& path, int width, int height, int channels, const uint8_t* pixels);

}  // namespace unet::io
