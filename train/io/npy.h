// NumPy .npy files: the exchange format with Python tooling (preprocessed datasets, predictions to
// inspect in a notebook). Reading converts any plain numeric dtype to float; writing produces
// float32 or uint8 files that numpy.load reads back unchanged.
//
// Format facts (numpy/lib/format.py, "NEP 1"):
//   magic "\x93NUMPY", major and minor version bytes, then the header length: uint16 LE for v1.0,
//   uint32 LE for v2.0 and v3.0 (v3 only allows UTF-8 in the header, which matters for
//   structured dtypes alone). The header is a Python dict literal,
//     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//   padded with spaces and ended by '\n' so that the data starts on a 64-byte boundary. The data
//   follows: prod(shape) items (1 for shape ()), in C order, or Fortran order when
//   'fortran_order' is True. 'descr' is a byte-order character ('<' little, '>' big, '|' not
//   applicable, '=' native) then a kind and an item size: f4 f8 u1 u2 u4 u8 i1 i2 i4 i8 b1.
// Reading converts to float in C order whatever the file's order and byte order. Integers beyond
// 2^24 in magnitude lose precision in float: the reader is meant for images and masks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/io/files.h"

namespace unet::io {

struct NpyArray {
  std::vector<int64_t> shape;  // empty for a 0-d array (one value)
  std::string dtype;           // numpy's name of the stored type: "float32", "uint8", "bool", ...
  std::vector<float> data;     // C order (last index fastest), converted to float
};

NpyArray read_npy(const std::string& path);

// Writes a v1.0 file in C order; the data holds prod(shape) values. Atomic (see files.h).
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data);
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const uint8_t* data);

}  // namespace unet::io
