// NumPy .npy reading and writing (format summary in npy.h). The header dict is parsed by a small
// recursive-descent parser that accepts exactly what numpy writes (and Python 2's "3L" integers),
// so a damaged header is reported instead of half-understood.
#include "train/io/npy.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>
#include <limits>
#include <optional>

namespace unet::io {
namespace {

static_assert(std::endian::native == std::endian::little,
              "the readers and writers assume a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

// ---------------------------------------------------------------------------------------------
// Header dict

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text) : path_(path), text_(text) {}

  Header parse() {
    Header header;
    bool seen_descr = false, seen_order = false, seen_shape = false;
    expect('{');
    while (!accept('}')) {
      std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        if (peek() == '[') fail("unsupported dtype: structured arrays (a list of fields)");
        header.descr = string_literal();
        seen_descr = true;
      } else if (key == "fortran_order") {
        header.fortran_order = boolean();
        seen_order = true;
      } else if (key == "shape") {
        header.shape = shape_tuple();
        seen_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    if (!seen_descr) fail("key 'descr' missing");
    if (!seen_order) fail("key 'fortran_order' missing");
    if (!seen_shape) fail("key 'shape' missing");
    return header;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw FileError(path_, "bad header: " + problem + " in " + quoted_text());
  }

  std::string quoted_text() const {
    std::string shown = text_.substr(0, 200);
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.pop_back();
    return "\"" + shown + (text_.size() > 200 ? "...\"" : "\"");
  }

  char peek() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }

  bool accept(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "' at offset " + std::to_string(pos_));
  }

  std::string string_literal() {
    char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a string at offset " + std::to_string(pos_));
    std::size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string value = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return value;
  }

  bool boolean() {
    peek();
    for (auto [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
      if (text_.compare(pos_, std::strlen(word), word) == 0) {
        pos_ += std::strlen(word);
        return value;
      }
    }
    fail("expected True or False at offset " + std::to_string(pos_));
  }

  int64_t integer() {
    peek();
    std::size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      if (value > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("dimension too large");
      value = value * 10 + (text_[pos_++] - '0');
    }
    if (pos_ == start) fail("expected a dimension at offset " + std::to_string(start));
    if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;  // Python 2 long
    return value;
  }

  std::vector<int64_t> shape_tuple() {
    std::vector<int64_t> shape;
    expect('(');
    while (!accept(')')) {
      shape.push_back(integer());
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return shape;
  }

  const std::string& path_;
  const std::string& text_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Dtypes

enum class Kind { f32, f64, u8, u16, u32, u64, i8, i16, i32, i64, boolean };

struct Dtype {
  Kind kind;
  std::size_t size;
  const char* name;
  bool big_endian;
};

Dtype parse_descr(const std::string& path, const std::string& descr) {
  struct Known {
    const char* code;
    Kind kind;
    std::size_t size;
    const char* name;
  };
  static constexpr Known kKnown[] = {
      {"f4", Kind::f32, 4, "float32"}, {"f8", Kind::f64, 8, "float64"},
      {"u1", Kind::u8, 1, "uint8"},    {"u2", Kind::u16, 2, "uint16"},
      {"u4", Kind::u32, 4, "uint32"},  {"u8", Kind::u64, 8, "uint64"},
      {"i1", Kind::i8, 1, "int8"},     {"i2", Kind::i16, 2, "int16"},
      {"i4", Kind::i32, 4, "int32"},   {"i8", Kind::i64, 8, "int64"},
      {"b1", Kind::boolean, 1, "bool"}};
  if (descr.size() >= 2 && std::string("<>|=").find(descr[0]) != std::string::npos) {
    std::string code = descr.substr(1);
    for (const Known& k : kKnown) {
      if (code == k.code) return Dtype{k.kind, k.size, k.name, descr[0] == '>'};
    }
  }
  throw FileError(
      path, "unsupported dtype '" + descr + "' (supported: float32/64, (u)int8/16/32/64, bool)");
}

template <typename T>
void convert_items(const uint8_t* src, std::size_t count, bool swap, float* dst) {
  for (std::size_t i = 0; i < count; ++i, src += sizeof(T)) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, src, sizeof(T));
    if (swap) std::reverse(raw, raw + sizeof(T));
    T value;
    std::memcpy(&value, raw, sizeof(T));
    dst[i] = static_cast<float>(value);
  }
}

void convert(const Dtype& dtype, const uint8_t* src, std::size_t count, float* dst) {
  bool swap = dtype.big_endian && dtype.size > 1;
  switch (dtype.kind) {
    case Kind::f32:
      return convert_items<float>(src, count, swap, dst);
    case Kind::f64:
      return convert_items<double>(src, count, swap, dst);
    case Kind::u8:
      return convert_items<uint8_t>(src, count, swap, dst);
    case Kind::u16:
      return convert_items<uint16_t>(src, count, swap, dst);
    case Kind::u32:
      return convert_items<uint32_t>(src, count, swap, dst);
    case Kind::u64:
      return convert_items<uint64_t>(src, count, swap, dst);
    case Kind::i8:
      return convert_items<int8_t>(src, count, swap, dst);
    case Kind::i16:
      return convert_items<int16_t>(src, count, swap, dst);
    case Kind::i32:
      return convert_items<int32_t>(src, count, swap, dst);
    case Kind::i64:
      return convert_items<int64_t>(src, count, swap, dst);
    case Kind::boolean:
      // Not through bool: a byte other than 0 or 1 in a bool is undefined behaviour.
      for (std::size_t i = 0; i < count; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Layout

// Number of items, or nullopt when it is negative or so large that count * item size (at most 8)
// could overflow: a corrupt shape must not wrap around and pass the size check.
std::optional<uint64_t> element_count(const std::vector<int64_t>& shape) {
  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d != 0 && count > std::numeric_limits<uint64_t>::max() / 16 / uint64_t(d)) {
      return std::nullopt;
    }
    count *= uint64_t(d);
  }
  return count;
}

// Fortran order (first index fastest) to C order (last index fastest) by walking the C-order
// indices like an odometer while keeping the matching Fortran offset.
std::vector<float> fortran_to_c(const std::vector<float>& f, const std::vector<int64_t>& shape) {
  std::size_t rank = shape.size();
  if (rank < 2 || f.empty()) return f;
  std::vector<std::size_t> stride(rank), index(rank, 0);
  std::size_t s = 1;
  for (std::size_t d = 0; d < rank; ++d) {
    stride[d] = s;
    s *= std::size_t(shape[d]);
  }
  std::vector<float> c(f.size());
  std::size_t offset = 0;
  for (float& value : c) {
    value = f[offset];
    for (std::size_t d = rank; d-- > 0;) {
      if (++index[d] < std::size_t(shape[d])) {
        offset += stride[d];
        break;
      }
      offset -= stride[d] * (index[d] - 1);
      index[d] = 0;
    }
  }
  return c;
}

uint32_t read_le(const uint8_t* p, std::size_t bytes) {
  uint32_t value = 0;
  for (std::size_t i = bytes; i-- > 0;) value = (value << 8) | p[i];
  return value;
}

std::string truncated(const char* what, uint64_t expected, uint64_t got) {
  return std::string("truncated ") + what + ": expected " + std::to_string(expected) +
         " bytes, got " + std::to_string(got);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (int64_t d : shape) text += std::to_string(d) + (shape.size() == 1 ? "," : ", ");
  if (shape.size() > 1) text.resize(text.size() - 2);
  return text + ")";
}

// ---------------------------------------------------------------------------------------------
// Writing

// A v1.0 header, padded so that the data starts at a multiple of 64 bytes as numpy does.
std::vector<uint8_t> header_bytes(const std::string& descr, const std::vector<int64_t>& shape) {
  std::string dict =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  std::size_t unpadded = kMagicSize + 4 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::vector<uint8_t> bytes(kMagic, kMagic + kMagicSize);
  bytes.push_back(1);
  bytes.push_back(0);
  bytes.push_back(uint8_t(dict.size() & 0xff));
  bytes.push_back(uint8_t(dict.size() >> 8));
  bytes.insert(bytes.end(), dict.begin(), dict.end());
  return bytes;
}

void write_raw(const std::string& path, const std::vector<int64_t>& shape, const char* descr,
               const void* data, std::size_t item_size) {
  std::optional<uint64_t> count = element_count(shape);
  if (!count) throw FileError(path, "cannot write: invalid shape " + shape_text(shape));
  if (*count > 0 && data == nullptr) throw FileError(path, "cannot write: no data");
  if (shape.size() > 32) throw FileError(path, "cannot write: more than 32 dimensions");
  std::vector<uint8_t> bytes = header_bytes(descr, shape);
  const auto* begin = static_cast<const uint8_t*>(data);
  bytes.insert(bytes.end(), begin, begin + *count * item_size);
  write_file_atomic(path, bytes);
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  std::size_t compared = std::min(bytes.size(), kMagicSize);
  if (std::memcmp(bytes.data(), kMagic, compared) != 0) {
    throw FileError(path, "bad magic: not a NumPy .npy file (expected \\x93NUMPY)");
  }
  if (bytes.size() < 10) throw FileError(path, truncated("preamble", 10, bytes.size()));
  int major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3) {
    throw FileError(path, "unsupported .npy version " + std::to_string(major) + "." +
                              std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  }
  std::size_t length_bytes = major == 1 ? 2 : 4;
  std::size_t header_start = 8 + length_bytes;
  if (bytes.size() < header_start) {
    throw FileError(path, truncated("preamble", header_start, bytes.size()));
  }
  std::size_t header_size = read_le(bytes.data() + 8, length_bytes);
  if (bytes.size() - header_start < header_size) {
    throw FileError(path, truncated("header", header_size, bytes.size() - header_start));
  }
  std::string text(bytes.begin() + std::ptrdiff_t(header_start),
                   bytes.begin() + std::ptrdiff_t(header_start + header_size));
  Header header = HeaderParser(path, text).parse();
  Dtype dtype = parse_descr(path, header.descr);

  std::optional<uint64_t> count = element_count(header.shape);
  if (!count) throw FileError(path, "bad header: impossible shape " + shape_text(header.shape));
  uint64_t expected = *count * dtype.size;
  std::size_t data_start = header_start + header_size;
  // Bytes after the data are ignored, as numpy.load does (np.save into an open file can append
  // several arrays).
  if (bytes.size() - data_start < expected) {
    throw FileError(path, truncated("data", expected, bytes.size() - data_start) + " for shape " +
                              shape_text(header.shape) + " of " + dtype.name);
  }
  // A uint8 array grows 4x as floats: the limit is on what is decoded, not on the file. An empty
  // array decodes to nothing (its caller decides whether that is an error).
  if (*count > 0) check_decoded_size(path, "array of shape", header.shape);
  NpyArray array;
  array.shape = header.shape;
  array.dtype = dtype.name;
  array.data.resize(std::size_t(*count));
  convert(dtype, bytes.data() + data_start, array.data.size(), array.data.data());
  if (header.fortran_order) array.data = fortran_to_c(array.data, array.shape);
  return array;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  write_raw(path, shape, "<f4", data, sizeof(float));
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const uint8_t* data) {
  write_raw(path, shape, "|u1", data, 1);
}

}  // namespace unet::io
