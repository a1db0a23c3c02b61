// NIfTI-1 volumes (.nii and gzipped .nii.gz): the format of 3D MRI datasets such as BraTS, read
// to train on their axial slices and written to hand predicted label maps back to viewers and
// evaluation tools.
//
// Format facts (nifti1.h, https://nifti.nimh.nih.gov/nifti-1):
//   a 348-byte header whose first field, sizeof_hdr, is 348: read byte-swapped it tells a
//   big-endian file, whose every field and voxel is then swapped. magic "n+1\0" at byte 344 marks
//   a single file (header, 4-byte extension flag, optional extensions, then the voxels at byte
//   vox_offset, at least 352); "ni1\0" is a .hdr/.img pair, not read here.
//   dim[0] is the number of dimensions, dim[1..3] the sizes (x fastest in the data); a 4-D file
//   with dim[4] == 1 (one time point) is a 3-D volume too. pixdim[1..3] are the voxel sizes.
//   datatype codes: 2 uint8, 4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16,
//   768 uint32, 1024 int64, 1280 uint64. Stored values v mean scl_slope * v + scl_inter, except
//   that scl_slope 0 means no scaling.
//   .nii.gz is the same bytes gzipped; gzip is recognised by its magic bytes 1f 8b, so a
//   compressed file named .nii (or the reverse) still reads.
// The header is kept (in host byte order) so that a written volume carries the orientation of
// the one it was computed from: viewers overlay a predicted mask on its scan only then.
#pragma once

#include <string>
#include <vector>

#include "train/io/files.h"

namespace unet::io {

struct Volume {
  int nx = 0, ny = 0, nz = 0;
  float dx = 1, dy = 1, dz = 1;  // voxel size (pixdim[1..3], usually mm)
  std::vector<float> data;       // nx * ny * nz values, x fastest, then y, then z; scaled
  std::vector<char> header;      // the 348-byte NIfTI-1 header, host byte order; empty if none
};

Volume read_nifti(const std::string& path);

// Writes `data` (like.nx * like.ny * like.nz values) with the geometry of `like`: its sizes,
// voxel sizes and, when it has a header, that header's orientation (qform/sform), units and
// description. as_uint8 stores labels as uint8 (values are rounded and must lie in 0..255),
// otherwise float32. Gzipped when the path ends in .nii.gz. Atomic (see files.h).
void write_nifti(const std::string& path, const Volume& like, const std::vector<float>& data,
                 bool as_uint8);

}  // namespace unet::io
