// NIfTI-1 reading and writing (format summary in nifti.h).
//
// The file is read into memory, then parsed: a 240x240x155 float volume is 36 MB, and whole reads
// give the truncation checks exact byte counts. A gzip file is inflated only as far as its header
// declares (header, extensions, voxels), so a small file cannot inflate to gigabytes; bytes after
// the voxels are not read, and so their CRC is not checked. Big-endian headers are swapped field by field into host
// order right after reading, so everything after that, and the header kept in Volume, is
// little-endian.
#include "train/io/nifti.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

namespace unet::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the readers and writers assume a little-endian host");

constexpr std::size_t kHeaderSize = 348;
constexpr std::size_t kDataOffset = 352;  // header + 4-byte extension flag

// Byte offsets of the header fields used here (nifti1.h, struct nifti_1_header).
enum Offset : std::size_t {
  kSizeofHdr = 0,
  kDim = 40,  // short[8]
  kDatatype = 70,
  kBitpix = 72,
  kPixdim = 76,  // float[8]
  kVoxOffset = 108,
  kSclSlope = 112,
  kSclInter = 116,
  kXyztUnits = 123,
  kCalMax = 124,
  kCalMin = 128,
  kGlmax = 140,
  kGlmin = 144,
  kMagic = 344,
};

// The numeric fields as runs of (offset, item size, count); everything else is char data. Used to
// byte-swap a big-endian header.
struct FieldRun {
  std::size_t offset, size, count;
};
constexpr FieldRun kNumericFields[] = {
    {0, 4, 1},     // sizeof_hdr
    {32, 4, 1},    // extents
    {36, 2, 1},    // session_error
    {40, 2, 8},    // dim
    {56, 4, 3},    // intent_p1..3
    {68, 2, 4},    // intent_code, datatype, bitpix, slice_start
    {76, 4, 8},    // pixdim
    {108, 4, 3},   // vox_offset, scl_slope, scl_inter
    {120, 2, 1},   // slice_end
    {124, 4, 4},   // cal_max, cal_min, slice_duration, toffset
    {140, 4, 2},   // glmax, glmin
    {252, 2, 2},   // qform_code, sform_code
    {256, 4, 6},   // quatern_b..d, qoffset_x..z
    {280, 4, 12},  // srow_x, srow_y, srow_z
};

void swap_header(char* header) {
  for (const FieldRun& run : kNumericFields) {
    for (std::size_t i = 0; i < run.count; ++i) {
      char* item = header + run.offset + i * run.size;
      std::reverse(item, item + run.size);
    }
  }
}

// Shortest readable form of a header number ("100", "0.5"), for messages.
std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

int32_t swap32(int32_t value) { return int32_t(__builtin_bswap32(uint32_t(value))); }

template <typename T>
T get(const char* header, std::size_t offset) {
  T value;
  std::memcpy(&value, header + offset, sizeof(T));
  return value;
}

template <typename T>
void set(char* header, std::size_t offset, T value) {
  std::memcpy(header + offset, &value, sizeof(T));
}

int16_t dim(const char* header, int i) { return get<int16_t>(header, kDim + 2 * std::size_t(i)); }

// ---------------------------------------------------------------------------------------------
// Datatypes

enum class Type { u8, i8, u16, i16, u32, i32, u64, i64, f32, f64 };

struct Datatype {
  int16_t code;
  Type type;
  std::size_t size;
  const char* name;
};

constexpr Datatype kDatatypes[] = {
    {2, Type::u8, 1, "uint8"},      {4, Type::i16, 2, "int16"},    {8, Type::i32, 4, "int32"},
    {16, Type::f32, 4, "float32"},  {64, Type::f64, 8, "float64"}, {256, Type::i8, 1, "int8"},
    {512, Type::u16, 2, "uint16"},  {768, Type::u32, 4, "uint32"}, {1024, Type::i64, 8, "int64"},
    {1280, Type::u64, 8, "uint64"},
};

// Names of the codes that exist but are not read, for the error message.
const char* unsupported_datatype_name(int code) {
  switch (code) {
    case 1:
      return " (binary)";
    case 32:
      return " (complex64)";
    case 128:
      return " (RGB24)";
    case 1536:
      return " (float128)";
    case 1792:
      return " (complex128)";
    case 2048:
      return " (complex256)";
    case 2304:
      return " (RGBA32)";
    default:
      return "";
  }
}

const Datatype& datatype(const std::string& path, int16_t code) {
  for (const Datatype& d : kDatatypes) {
    if (d.code == code) return d;
  }
  throw FileError(path, "unsupported datatype code " + std::to_string(code) +
                            unsupported_datatype_name(code) +
                            " (supported: (u)int8/16/32/64, float32, float64)");
}

// Stored value to double: every supported integer type except (u)int64 beyond 2^53 is exact, so
// the scaling below only rounds once, to float.
template <typename T>
void convert_items(const uint8_t* src, std::size_t count, bool swap, double slope, double inter,
                   float* dst) {
  for (std::size_t i = 0; i < count; ++i, src += sizeof(T)) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, src, sizeof(T));
    if (swap) std::reverse(raw, raw + sizeof(T));
    T value;
    std::memcpy(&value, raw, sizeof(T));
    dst[i] = static_cast<float>(slope * static_cast<double>(value) + inter);
  }
}

void convert(Type type, const uint8_t* src, std::size_t count, bool swap, double slope,
             double inter, float* dst) {
  switch (type) {
    case Type::u8:
      return convert_items<uint8_t>(src, count, swap, slope, inter, dst);
    case Type::i8:
      return convert_items<int8_t>(src, count, swap, slope, inter, dst);
    case Type::u16:
      return convert_items<uint16_t>(src, count, swap, slope, inter, dst);
    case Type::i16:
      return convert_items<int16_t>(src, count, swap, slope, inter, dst);
    case Type::u32:
      return convert_items<uint32_t>(src, count, swap, slope, inter, dst);
    case Type::i32:
      return convert_items<int32_t>(src, count, swap, slope, inter, dst);
    case Type::u64:
      return convert_items<uint64_t>(src, count, swap, slope, inter, dst);
    case Type::i64:
      return convert_items<int64_t>(src, count, swap, slope, inter, dst);
    case Type::f32:
      return convert_items<float>(src, count, swap, slope, inter, dst);
    case Type::f64:
      return convert_items<double>(src, count, swap, slope, inter, dst);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

bool is_gzip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in && magic[0] == 0x1f && magic[1] == 0x8b;
}

// The first `limit` bytes of the decompressed stream (fewer if it ends first): a volume's bytes
// are bounded by its header, so a small file that inflates to gigabytes is never inflated whole.
std::vector<uint8_t> gunzip_file(const std::string& path, std::size_t limit) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> gz(gzopen(path.c_str(), "rb"), gzclose_r);
  if (!gz) throw FileError(path, "cannot open gzip stream");
  gzbuffer(gz.get(), 1 << 17);
  std::vector<uint8_t> bytes;
  constexpr std::size_t kChunk = std::size_t(1) << 22;
  while (bytes.size() < limit) {
    std::size_t used = bytes.size();
    const auto want = unsigned(std::min(kChunk, limit - used));
    bytes.resize(used + want);
    int n = gzread(gz.get(), bytes.data() + used, want);
    int status = Z_OK;
    std::string message = gzerror(gz.get(), &status);
    // zlib prefixes its messages with the path, which our text starts with already.
    if (message.rfind(path + ": ", 0) == 0) message.erase(0, path.size() + 2);
    // zlib lets a stream that ends early return its bytes, then flags Z_BUF_ERROR; a damaged
    // stream (bad deflate data, CRC or length mismatch) fails with Z_DATA_ERROR.
    if (n < 0 || (status != Z_OK && status != Z_BUF_ERROR)) {
      throw FileError(path, "corrupt gzip stream: " + message);
    }
    bytes.resize(used + static_cast<std::size_t>(n));
    if (status == Z_BUF_ERROR) {
      throw FileError(path, "truncated gzip stream (" + message + ") after " +
                                std::to_string(bytes.size()) + " decompressed bytes");
    }
    if (n == 0) break;
  }
  return bytes;
}

// The header in host byte order; `swapped` tells whether the file is big-endian.
std::vector<char> host_order_header(const std::string& path, const std::vector<uint8_t>& bytes,
                                    bool& swapped) {
  if (bytes.size() < kHeaderSize) {
    throw FileError(path, "truncated header: expected " + std::to_string(kHeaderSize) +
                              " bytes, got " + std::to_string(bytes.size()));
  }
  std::vector<char> header(bytes.begin(), bytes.begin() + kHeaderSize);
  int32_t size = get<int32_t>(header.data(), kSizeofHdr);
  swapped = size != int32_t(kHeaderSize) && swap32(size) == int32_t(kHeaderSize);
  if (swapped) swap_header(header.data());
  size = get<int32_t>(header.data(), kSizeofHdr);
  if (size == 540 || swap32(size) == 540) {
    throw FileError(path, "unsupported format: NIfTI-2 (sizeof_hdr 540); only NIfTI-1 is read");
  }
  if (size != int32_t(kHeaderSize)) {
    throw FileError(path, "bad header: sizeof_hdr is " + std::to_string(size) +
                              ", expected 348 (not a NIfTI-1 file)");
  }
  return header;
}

void check_magic(const std::string& path, const char* header) {
  const char* magic = header + kMagic;
  if (std::memcmp(magic, "n+1\0", 4) == 0) return;
  if (std::memcmp(magic, "ni1\0", 4) == 0) {
    throw FileError(path,
                    "unsupported format: magic \"ni1\" is a .hdr/.img pair; only single "
                    "files (magic \"n+1\") are read");
  }
  std::string shown;
  for (int i = 0; i < 4; ++i) {
    auto c = static_cast<unsigned char>(magic[i]);
    char escaped[5];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
    shown += (c >= 32 && c < 127) ? std::string(1, char(c)) : std::string(escaped);
  }
  throw FileError(path, "bad magic \"" + shown + "\" (expected \"n+1\")");
}

// dim[0] must describe a 3-D volume: 3, or up to 7 with every size beyond the third equal to 1.
void check_dims(const std::string& path, const char* header) {
  int rank = dim(header, 0);
  bool ok = rank >= 3 && rank <= 7;
  for (int i = 4; ok && i <= rank; ++i) ok = dim(header, i) == 1;
  if (!ok) {
    std::string dims;
    for (int i = 0; i < 8; ++i) dims += (i ? ", " : "") + std::to_string(dim(header, i));
    throw FileError(path, "wrong number of dimensions: dim = [" + dims +
                              "], expected a 3-D volume (dim[0] 3, or 4 to 7 with sizes 1 "
                              "beyond the third)");
  }
  for (int i = 1; i <= 3; ++i) {
    if (dim(header, i) < 1) {
      throw FileError(
          path, "bad header: dim[" + std::to_string(i) + "] = " + std::to_string(dim(header, i)));
    }
  }
}

// Where the voxels start. 0 is taken as 352, as nibabel does: some writers leave it unset.
std::size_t data_offset(const std::string& path, const char* header) {
  float offset = get<float>(header, kVoxOffset);
  if (offset == 0) return kDataOffset;
  if (!std::isfinite(offset) || offset < float(kHeaderSize) || offset != std::floor(offset) ||
      offset > 1e12f) {
    throw FileError(path, "bad header: vox_offset " + number_text(offset));
  }
  return static_cast<std::size_t>(offset);
}

// ---------------------------------------------------------------------------------------------
// Writing

// A header for a volume that was not read from a file: sizes and voxel sizes, millimetres, no
// orientation (qform_code = sform_code = 0).
std::vector<char> fresh_header() {
  std::vector<char> header(kHeaderSize, 0);
  set<float>(header.data(), kPixdim, 1.0f);  // qfac
  header[kXyztUnits] = 2;                    // NIFTI_UNITS_MM
  return header;
}

void fill_header(char* header, const Volume& like, bool as_uint8) {
  set<int32_t>(header, kSizeofHdr, int32_t(kHeaderSize));
  const int16_t dims[8] = {3, int16_t(like.nx), int16_t(like.ny), int16_t(like.nz), 1, 1, 1, 1};
  for (int i = 0; i < 8; ++i) set<int16_t>(header, kDim + 2 * std::size_t(i), dims[i]);
  set<float>(header, kPixdim + 4, like.dx);
  set<float>(header, kPixdim + 8, like.dy);
  set<float>(header, kPixdim + 12, like.dz);
  set<int16_t>(header, kDatatype, as_uint8 ? 2 : 16);
  set<int16_t>(header, kBitpix, as_uint8 ? 8 : 32);
  set<float>(header, kVoxOffset, float(kDataOffset));
  // The data written is final: no scaling. The display range and Analyze-era extrema of the
  // source would be wrong for it.
  set<float>(header, kSclSlope, 1.0f);
  set<float>(header, kSclInter, 0.0f);
  set<float>(header, kCalMax, 0.0f);
  set<float>(header, kCalMin, 0.0f);
  set<int32_t>(header, kGlmax, 0);
  set<int32_t>(header, kGlmin, 0);
  std::memcpy(header + kMagic, "n+1\0", 4);
}

void append_voxels(const std::string& path, const std::vector<float>& data, bool as_uint8,
                   std::vector<uint8_t>& out) {
  if (!as_uint8) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
    out.insert(out.end(), bytes, bytes + data.size() * sizeof(float));
    return;
  }
  for (std::size_t i = 0; i < data.size(); ++i) {
    float v = data[i];
    if (!(v > -0.5f && v < 255.5f)) {
      throw FileError(path, "cannot write as uint8: value " + number_text(v) + " at voxel " +
                                std::to_string(i) + " is outside 0..255");
    }
    out.push_back(static_cast<uint8_t>(std::lround(v)));
  }
}

std::vector<uint8_t> gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  if (bytes.size() > UINT_MAX) throw FileError(path, "cannot write: too large for one gzip call");
  z_stream stream{};
  // windowBits 15 + 16: a gzip wrapper (header and CRC) rather than a raw zlib stream.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw FileError(path, "cannot write: zlib initialisation failed");
  }
  std::vector<uint8_t> out(deflateBound(&stream, uLong(bytes.size())));
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = uInt(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = uInt(out.size());
  int status = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw FileError(path, "cannot write: gzip compression failed");
  return out;
}

}  // namespace

Volume read_nifti(const std::string& path) {
  check_readable(path);
  const bool gzipped = is_gzip(path);
  // A gzip file is inflated twice as far as needed: the header, then what the header declares.
  std::vector<uint8_t> bytes = gzipped ? gunzip_file(path, kHeaderSize) : read_file(path);
  bool swapped = false;
  Volume volume;
  volume.header = host_order_header(path, bytes, swapped);
  const char* header = volume.header.data();
  check_magic(path, header);
  check_dims(path, header);
  const Datatype& type = datatype(path, get<int16_t>(header, kDatatype));
  std::size_t offset = data_offset(path, header);

  volume.nx = dim(header, 1);
  volume.ny = dim(header, 2);
  volume.nz = dim(header, 3);
  // Voxel sizes are lengths; a negative pixdim carries no meaning for them.
  volume.dx = std::fabs(get<float>(header, kPixdim + 4));
  volume.dy = std::fabs(get<float>(header, kPixdim + 8));
  volume.dz = std::fabs(get<float>(header, kPixdim + 12));

  check_decoded_size(path, "volume of", {volume.nx, volume.ny, volume.nz});
  std::size_t count = std::size_t(volume.nx) * std::size_t(volume.ny) * std::size_t(volume.nz);
  std::size_t expected = count * type.size;
  if (gzipped) bytes = gunzip_file(path, offset + expected);
  std::size_t available = bytes.size() > offset ? bytes.size() - offset : 0;
  if (available < expected) {
    throw FileError(path, "truncated data: expected " + std::to_string(expected) + " bytes of " +
                              type.name + " voxels at offset " + std::to_string(offset) + ", got " +
                              std::to_string(available));
  }
  float slope = get<float>(header, kSclSlope);
  float inter = get<float>(header, kSclInter);
  bool scaled = slope != 0 && std::isfinite(slope);
  volume.data.resize(count);
  convert(type.type, bytes.data() + offset, count, swapped, scaled ? slope : 1.0,
          scaled && std::isfinite(inter) ? inter : 0.0, volume.data.data());
  return volume;
}

void write_nifti(const std::string& path, const Volume& like, const std::vector<float>& data,
                 bool as_uint8) {
  bool gzipped = ends_with_icase(path, ".nii.gz");
  if (!gzipped && !ends_with_icase(path, ".nii")) {
    throw FileError(path, "cannot write: unsupported extension (expected .nii or .nii.gz)");
  }
  const int sizes[3] = {like.nx, like.ny, like.nz};
  for (int n : sizes) {
    if (n < 1 || n > 32767) {
      throw FileError(path, "cannot write: volume size " + std::to_string(like.nx) + "x" +
                                std::to_string(like.ny) + "x" + std::to_string(like.nz) +
                                " (each must be 1..32767)");
    }
  }
  std::size_t count = std::size_t(like.nx) * std::size_t(like.ny) * std::size_t(like.nz);
  if (data.size() != count) {
    throw FileError(path, "cannot write: " + std::to_string(data.size()) +
                              " values for a volume of " + std::to_string(count) + " voxels");
  }
  if (!like.header.empty() && like.header.size() != kHeaderSize) {
    throw FileError(path, "cannot write: the template header has " +
                              std::to_string(like.header.size()) + " bytes, expected 348");
  }
  std::vector<char> header = like.header.empty() ? fresh_header() : like.header;
  fill_header(header.data(), like, as_uint8);

  std::vector<uint8_t> bytes(header.begin(), header.end());
  bytes.resize(kDataOffset, 0);  // extension flag 0: no extensions follow
  bytes.reserve(kDataOffset + count * (as_uint8 ? 1 : 4));
  append_voxels(path, data, as_uint8, bytes);
  write_file_atomic(path, gzipped ? gzip(path, bytes) : bytes);
}

}  // namespace unet::io
