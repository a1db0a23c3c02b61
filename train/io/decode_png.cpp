// PNG decoding with libspng: every colour type and bit depth, in the channels the file has.
//
// The file is decoded to RGBA at 8 or 16 bits (libspng's own expansion of palettes and of
// 1/2/4-bit grey to 0..255), then the channels the file actually has are kept: grey stays one
// channel, and a tRNS chunk adds an alpha channel, as stb_image did before.
#include <spng.h>

#include <algorithm>
#include <memory>

#include "train/io/decoders.h"

namespace unet::io::detail {
namespace {

std::string explain(int error) {
  if (error == SPNG_ESIGNATURE) return "not a PNG file (bad signature)";
  if (error == SPNG_IO_EOF) return "truncated or corrupt data (the file ends early)";
  return spng_strerror(error);
}

int channels_of(const spng_ihdr& ihdr, bool transparency) {
  switch (ihdr.color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: return transparency ? 2 : 1;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: return 2;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: return 4;
    default: return transparency ? 4 : 3;  // truecolour, palette
  }
}

// Samples per pixel as stored, by colour type (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA).
constexpr uint64_t kSamples[7] = {1, 0, 3, 1, 2, 0, 4};

// Which of R, G, B, A make up `channels` output channels.
constexpr int kPick[5][4] = {{}, {0}, {0, 3}, {0, 1, 2}, {0, 1, 2, 3}};

template <typename Sample>
void keep_channels(const std::vector<uint8_t>& rgba, int channels, std::vector<float>& out) {
  const auto* s = reinterpret_cast<const Sample*>(rgba.data());
  const std::size_t pixels = rgba.size() / (4 * sizeof(Sample));
  out.resize(pixels * std::size_t(channels));
  for (std::size_t i = 0; i < pixels; ++i)
    for (int c = 0; c < channels; ++c) out[i * std::size_t(channels) + std::size_t(c)] = float(s[4 * i + std::size_t(kPick[channels][c])]);
}

}  // namespace

Image decode_png(const std::string& path, const std::vector<uint8_t>& bytes) {
  const auto check = [&](int error) {
    if (error != 0) throw FileError(path, "cannot decode PNG: " + explain(error));
  };
  // libspng reads the signature and the header in one go: a short file that is not a PNG at all
  // would otherwise be reported as a truncated one.
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin())) check(SPNG_ESIGNATURE);
  std::unique_ptr<spng_ctx, void (*)(spng_ctx*)> ctx(spng_ctx_new(0), spng_ctx_free);
  if (!ctx) throw FileError(path, "cannot decode PNG: out of memory");
  // Text and ICC chunks are held in memory: a hostile file must not make them gigabytes.
  check(spng_set_chunk_limits(ctx.get(), std::size_t(1) << 24, std::size_t(1) << 26));
  check(spng_set_png_buffer(ctx.get(), bytes.data(), bytes.size()));
  spng_ihdr ihdr{};
  check(spng_get_ihdr(ctx.get(), &ihdr));
  spng_trns trns{};
  const bool transparency = spng_get_trns(ctx.get(), &trns) == 0;

  Image image;
  image.width = int(ihdr.width);
  image.height = int(ihdr.height);
  image.channels = channels_of(ihdr, transparency);
  image.bits = ihdr.bit_depth == 16 ? 16 : 8;
  check_decoded_size(path, "image of height x width x channels",
                     {int64_t(ihdr.height), int64_t(ihdr.width), image.channels});
  // Deflate expands at most 1032:1, so the scanlines a header claims must fit that bound of the
  // file's size; libspng would otherwise allocate the whole image before finding the data short.
  const uint64_t scanlines = uint64_t(ihdr.height) * (uint64_t(ihdr.width) * kSamples[ihdr.color_type] * ihdr.bit_depth / 8 + 1);
  if (scanlines > 1032 * uint64_t(bytes.size()))
    throw FileError(path, "cannot decode PNG: its header claims " + std::to_string(ihdr.width) + " x " +
                              std::to_string(ihdr.height) + " pixels, more than " + std::to_string(bytes.size()) +
                              " bytes of deflate data can hold");
  const int format = image.bits == 16 ? SPNG_FMT_RGBA16 : SPNG_FMT_RGBA8;
  std::size_t size = 0;
  check(spng_decoded_image_size(ctx.get(), format, &size));
  std::vector<uint8_t> rgba(size);
  check(spng_decode_image(ctx.get(), rgba.data(), rgba.size(), format, SPNG_DECODE_TRNS));
  if (image.bits == 16) keep_channels<uint16_t>(rgba, image.channels, image.pixels);
  else keep_channels<uint8_t>(rgba, image.channels, image.pixels);
  return image;
}

}  // namespace unet::io::detail
