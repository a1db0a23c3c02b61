// 2D image reading (libspng, libjpeg-turbo, stb_image for BMP, libtiff) and PNG writing
// (stb_image_write); see image.h and decoders.h.
//
// stb is compiled here, in this translation unit only, with its functions static so that they
// cannot clash with another copy of stb linked into the same program, and without its stdio
// code: files are read by read_file (uniform "file not found" / "empty file" messages) and PNGs
// are encoded into memory, then written atomically.
//
// libtiff reports problems through handlers that print to stderr by default. Each file is opened
// with its own handlers (TIFFOpenExt, libtiff >= 4.5) that collect the messages for our
// exception and print nothing: no global state, so reading in several threads stays safe.
#include "train/io/image.h"

#include "train/io/decoders.h"

#include <tiffio.h>

#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

// stb's code is not ours to fix: quiet the warnings it raises under our flags where the compiler
// does not already treat it as a system header (a copy outside /usr/include).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#define STBI_ONLY_BMP
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace unet::io {
namespace {

// ---------------------------------------------------------------------------------------------
// stb_image: BMP

// stb's reasons are terse tags; the two that matter most read better spelled out.
std::string explain_stb_failure(const char* reason) {
  std::string tag = reason != nullptr ? reason : "unknown error";
  if (tag == "outofdata") return "truncated or corrupt data (stb: outofdata)";
  if (tag == "unknown image type") return "not a BMP file (stb: unknown image type)";
  return tag;
}

Image read_with_stb(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  if (bytes.size() > std::size_t(INT_MAX)) throw FileError(path, "file too large for stb_image");
  const auto* data = bytes.data();
  int size = static_cast<int>(bytes.size());
  Image image;
  // The header's size first: stb would otherwise allocate whatever a small file claims.
  int width = 0, height = 0, channels = 0;
  if (stbi_info_from_memory(data, size, &width, &height, &channels) == 1) {
    check_decoded_size(path, "image of height x width x channels", {height, width, channels});
    // Even RLE packs at most ~128 pixels a byte: a larger claim is a lie stb would allocate for.
    if (uint64_t(width) * uint64_t(height) > 256 * uint64_t(bytes.size()))
      throw FileError(path, "cannot decode BMP: its header claims " + std::to_string(width) + " x " +
                                std::to_string(height) + " pixels, more than " + std::to_string(bytes.size()) +
                                " bytes can hold");
  }
  image.bits = stbi_is_16_bit_from_memory(data, size) ? 16 : 8;
  void* loaded = image.bits == 16
                     ? static_cast<void*>(stbi_load_16_from_memory(
                           data, size, &image.width, &image.height, &image.channels, 0))
                     : static_cast<void*>(stbi_load_from_memory(data, size, &image.width,
                                                                &image.height, &image.channels, 0));
  std::unique_ptr<void, void (*)(void*)> pixels(loaded, stbi_image_free);
  if (!pixels) {
    throw FileError(path, "cannot decode BMP: " + explain_stb_failure(stbi_failure_reason()));
  }
  std::size_t count = std::size_t(image.width) * std::size_t(image.height) * image.channels;
  if (image.bits == 16) {
    const auto* samples = static_cast<const stbi_us*>(pixels.get());
    image.pixels.assign(samples, samples + count);
  } else {
    const auto* samples = static_cast<const stbi_uc*>(pixels.get());
    image.pixels.assign(samples, samples + count);
  }
  return image;
}

// ---------------------------------------------------------------------------------------------
// libtiff

// Messages of one open file, and its path to leave out of them (our text starts with it).
struct TiffMessages {
  std::string path;
  std::string text;
};

int collect_message(TIFF*, void* user_data, const char* module, const char* fmt, va_list args) {
  char message[512];
  std::vsnprintf(message, sizeof message, fmt, args);
  auto* messages = static_cast<TiffMessages*>(user_data);
  if (!messages->text.empty()) messages->text += "; ";
  if (module != nullptr && *module != '\0' && messages->path != module) {
    messages->text += std::string(module) + ": ";
  }
  messages->text += message;
  return 1;  // handled: libtiff must not call its global (stderr) handler as well
}

int drop_message(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// An open TIFF file with the messages libtiff reported on it.
class TiffFile {
 public:
  explicit TiffFile(const std::string& path) : messages_{path, {}} {
    std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> options(TIFFOpenOptionsAlloc(),
                                                                         TIFFOpenOptionsFree);
    TIFFOpenOptionsSetErrorHandlerExtR(options.get(), collect_message, &messages_);
    // Warnings (unknown private tags and the like) do not stop reading, and they are not ours
    // to print.
    TIFFOpenOptionsSetWarningHandlerExtR(options.get(), drop_message, nullptr);
    tif_ = TIFFOpenExt(path.c_str(), "r", options.get());
    if (tif_ == nullptr) throw error("cannot open TIFF");
  }
  TiffFile(const TiffFile&) = delete;
  TiffFile& operator=(const TiffFile&) = delete;
  ~TiffFile() { TIFFClose(tif_); }

  TIFF* get() const { return tif_; }
  const std::string& path() const { return messages_.path; }

  FileError error(const std::string& problem) const {
    const std::string& text = messages_.text;
    return FileError(messages_.path, text.empty() ? problem : problem + ": " + text);
  }

  uint32_t field32(uint32_t tag, const char* name) const {
    uint32_t value = 0;
    if (TIFFGetField(tif_, tag, &value) != 1) throw error(std::string("bad header: no ") + name);
    return value;
  }

  uint16_t field16_or_default(uint32_t tag) const {
    uint16_t value = 0;
    TIFFGetFieldDefaulted(tif_, tag, &value);
    return value;
  }

 private:
  TiffMessages messages_;
  TIFF* tif_ = nullptr;
};

struct TiffLayout {
  uint32_t width, height;
  int samples, bytes_per_sample;
  bool invert;  // MINISWHITE: 0 is white
  std::size_t row_bytes() const { return std::size_t(width) * samples * bytes_per_sample; }
};

const char* sample_format_name(uint16_t format) {
  switch (format) {
    case SAMPLEFORMAT_INT:
      return "signed integer";
    case SAMPLEFORMAT_IEEEFP:
      return "IEEE floating point";
    case SAMPLEFORMAT_COMPLEXINT:
      return "complex integer";
    case SAMPLEFORMAT_COMPLEXIEEEFP:
      return "complex floating point";
    default:
      return "undefined";
  }
}

// A damaged header must not make us allocate gigabytes before the first strip is read.
// No compression libtiff decodes here packs more than ~4096 bytes into one (LZW's longest
// code), so a header claiming more than that of the file's size is a lie. `what` is the image
// or the tile, of width x height pixels and `bytes` bytes decoded.
void check_fits_file(const TiffFile& file, const char* what, uint32_t width, uint32_t height, uint64_t bytes) {
  std::error_code error;
  const uint64_t file_bytes = std::filesystem::file_size(file.path(), error);
  if (!error && bytes > 4096 * file_bytes)
    throw file.error(std::string("bad header: ") + what + " of " + std::to_string(width) + " x " +
                     std::to_string(height) + " pixels, more than " + std::to_string(file_bytes) + " bytes can hold");
}

void check_size(const TiffFile& file, const TiffLayout& layout) {
  check_decoded_size(file.path(), "image of height x width x samples",
                     {int64_t(layout.height), int64_t(layout.width), int64_t(layout.samples)});
  check_fits_file(file, "image", layout.width, layout.height, uint64_t(layout.height) * layout.row_bytes());
}

TiffLayout tiff_layout(const TiffFile& file) {
  TIFF* tif = file.get();
  TiffLayout layout{};
  layout.width = file.field32(TIFFTAG_IMAGEWIDTH, "ImageWidth");
  layout.height = file.field32(TIFFTAG_IMAGELENGTH, "ImageLength");
  uint16_t format = file.field16_or_default(TIFFTAG_SAMPLEFORMAT);
  if (format != SAMPLEFORMAT_UINT) {
    throw file.error(std::string("unsupported sample format ") + sample_format_name(format) +
                     " (supported: unsigned integer)");
  }
  uint16_t bits = file.field16_or_default(TIFFTAG_BITSPERSAMPLE);
  if (bits != 8 && bits != 16) {
    throw file.error("unsupported bit depth " + std::to_string(bits) + " (supported: 8, 16)");
  }
  uint16_t samples = file.field16_or_default(TIFFTAG_SAMPLESPERPIXEL);
  if (samples < 1 || samples > 4) {
    throw file.error("unsupported samples per pixel " + std::to_string(samples) +
                     " (supported: 1 to 4)");
  }
  if (samples > 1 && file.field16_or_default(TIFFTAG_PLANARCONFIG) != PLANARCONFIG_CONTIG) {
    throw file.error("unsupported planar configuration: separate planes (supported: contiguous)");
  }
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
  if (photometric != PHOTOMETRIC_MINISBLACK && photometric != PHOTOMETRIC_MINISWHITE &&
      photometric != PHOTOMETRIC_RGB) {
    throw file.error("unsupported photometric interpretation " + std::to_string(photometric) +
                     " (supported: grey, RGB)");
  }
  layout.samples = samples;
  layout.bytes_per_sample = bits / 8;
  layout.invert = photometric == PHOTOMETRIC_MINISWHITE;
  check_size(file, layout);
  return layout;
}

// Decoded rows of a strip-organised image into `raw` (rows top to bottom, no padding).
void read_strips(const TiffFile& file, const TiffLayout& layout, std::vector<uint8_t>& raw) {
  TIFF* tif = file.get();
  uint32_t rows_per_strip = 0;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  rows_per_strip = std::clamp(rows_per_strip, 1u, layout.height);
  std::vector<uint8_t> buffer(std::size_t(TIFFStripSize(tif)));
  for (uint32_t row = 0; row < layout.height; row += rows_per_strip) {
    uint32_t strip = TIFFComputeStrip(tif, row, 0);
    uint32_t rows = std::min(rows_per_strip, layout.height - row);
    std::size_t needed = rows * layout.row_bytes();
    tmsize_t got = TIFFReadEncodedStrip(tif, strip, buffer.data(), tmsize_t(buffer.size()));
    if (got < 0) throw file.error("cannot read strip " + std::to_string(strip));
    if (std::size_t(got) < needed) {
      throw file.error("truncated strip " + std::to_string(strip) + ": expected " +
                       std::to_string(needed) + " bytes, got " + std::to_string(got));
    }
    std::memcpy(raw.data() + row * layout.row_bytes(), buffer.data(), needed);
  }
}

// Decoded tiles copied into place in `raw`; edge tiles are padded in the file and clipped here.
void read_tiles(const TiffFile& file, const TiffLayout& layout, std::vector<uint8_t>& raw) {
  TIFF* tif = file.get();
  uint32_t tile_width = file.field32(TIFFTAG_TILEWIDTH, "TileWidth");
  uint32_t tile_height = file.field32(TIFFTAG_TILELENGTH, "TileLength");
  std::size_t pixel_bytes = std::size_t(layout.samples) * layout.bytes_per_sample;
  // A tile is allocated whole, and may be larger than the image: bound it like the image.
  check_fits_file(file, "tile", tile_width, tile_height, uint64_t(TIFFTileSize64(tif)));
  std::vector<uint8_t> buffer(std::size_t(TIFFTileSize(tif)));
  if (buffer.size() < std::size_t(tile_width) * tile_height * pixel_bytes) {
    throw file.error("bad header: tile size inconsistent with TileWidth and TileLength");
  }
  for (uint32_t y = 0; y < layout.height; y += tile_height) {
    for (uint32_t x = 0; x < layout.width; x += tile_width) {
      uint32_t tile = TIFFComputeTile(tif, x, y, 0, 0);
      if (TIFFReadEncodedTile(tif, tile, buffer.data(), tmsize_t(buffer.size())) < 0) {
        throw file.error("cannot read tile " + std::to_string(tile));
      }
      std::size_t copy = std::min(tile_width, layout.width - x) * pixel_bytes;
      for (uint32_t r = 0; r < std::min(tile_height, layout.height - y); ++r) {
        std::memcpy(raw.data() + (y + r) * layout.row_bytes() + x * pixel_bytes,
                    buffer.data() + std::size_t(r) * tile_width * pixel_bytes, copy);
      }
    }
  }
}

// Samples to float; libtiff has already put 16-bit samples in host byte order.
std::vector<float> tiff_samples(const TiffLayout& layout, const std::vector<uint8_t>& raw) {
  std::size_t count = raw.size() / layout.bytes_per_sample;
  float max = layout.bytes_per_sample == 1 ? 255.0f : 65535.0f;
  std::vector<float> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    uint16_t sample = raw[i];
    if (layout.bytes_per_sample == 2) std::memcpy(&sample, raw.data() + 2 * i, 2);
    values[i] = layout.invert ? max - float(sample) : float(sample);
  }
  return values;
}

Image read_with_libtiff(const std::string& path) {
  check_readable(path);
  TiffFile file(path);
  TiffLayout layout = tiff_layout(file);
  std::vector<uint8_t> raw(layout.height * layout.row_bytes());
  if (TIFFIsTiled(file.get())) {
    read_tiles(file, layout, raw);
  } else {
    read_strips(file, layout, raw);
  }
  Image image;
  image.width = int(layout.width);
  image.height = int(layout.height);
  image.channels = layout.samples;
  image.bits = 8 * layout.bytes_per_sample;
  image.pixels = tiff_samples(layout, raw);
  return image;
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* bytes = static_cast<const uint8_t*>(data);
  out->insert(out->end(), bytes, bytes + size);
}

}  // namespace

Image read_image(const std::string& path) {
  if (ends_with_icase(path, ".png")) return detail::decode_png(path, read_file(path));
  if (ends_with_icase(path, ".jpg") || ends_with_icase(path, ".jpeg")) return detail::decode_jpeg(path, read_file(path));
  if (ends_with_icase(path, ".bmp")) return read_with_stb(path);
  if (ends_with_icase(path, ".tif") || ends_with_icase(path, ".tiff")) {
    return read_with_libtiff(path);
  }
  throw FileError(path,
                  "unsupported image type (extensions read: .png .jpg .jpeg .bmp .tif .tiff)");
}

void write_png(const std::string& path, int width, int height, int channels,
               const uint8_t* pixels) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || pixels == nullptr ||
      int64_t(width) * channels > INT_MAX) {
    throw FileError(path, "cannot write PNG of " + std::to_string(width) + "x" +
                              std::to_string(height) + "x" + std::to_string(channels) +
                              (pixels == nullptr ? " without pixels" : ": invalid size"));
  }
  // Filter 0 for every row instead of stb's default trial of all five per row: 4x faster on our
  // figures (flat colours, lines) for the same file size, which matters for curves redrawn each
  // epoch. stb keeps this setting in a global, so it is set before every write.
  stbi_write_force_png_filter = 0;
  std::vector<uint8_t> bytes;
  if (!stbi_write_png_to_func(append_bytes, &bytes, width, height, channels, pixels,
                              width * channels)) {
    throw FileError(path, "cannot encode PNG");
  }
  write_file_atomic(path, bytes);
}

}  // namespace unet::io
