// Writes the seed corpus of the fuzz targets: small valid files of every format the readers
// take, made by our own writers (npy, PNG, NIfTI, checkpoint, split) and by the libraries'
// encoders (TIFF, JPEG), one folder per target. Usage: make_corpus <folder>
#include <tiffio.h>
#include <turbojpeg.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"
#include "train/split.h"

namespace fs = std::filesystem;
using namespace unet;

namespace {

std::vector<uint8_t> gradient(int width, int height, int channels) {
  std::vector<uint8_t> p(std::size_t(width * height * channels));
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = uint8_t(i * 7 + i / 13);
  return p;
}

void write_tiff(const std::string& path, int width, int height, int samples, int bits, uint16_t compression) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  if (!tif) throw std::runtime_error(path + ": cannot create");
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(height));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(samples));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(bits));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, samples >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, compression);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, uint32_t(4));
  const std::vector<uint8_t> row = gradient(width, 1, samples * bits / 8);
  for (int y = 0; y < height; ++y) TIFFWriteScanline(tif, const_cast<uint8_t*>(row.data()), uint32_t(y), 0);
  TIFFClose(tif);
}

void write_jpeg(const std::string& path, int width, int height, int channels) {
  tjhandle tj = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const std::vector<uint8_t> pixels = gradient(width, height, channels);
  tjCompress2(tj, pixels.data(), width, 0, height, channels == 1 ? TJPF_GRAY : TJPF_RGB, &out, &size,
              channels == 1 ? TJSAMP_GRAY : TJSAMP_420, 90, 0);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out), std::streamsize(size));
  tjFree(out);
  tjDestroy(tj);
}

// A 24-bit BMP: the 54-byte header, then rows bottom-up, BGR, padded to 4 bytes.
void write_bmp(const std::string& path, int width, int height) {
  const int row = (3 * width + 3) / 4 * 4;
  std::vector<uint8_t> b = {'B', 'M'};
  const auto put = [&](uint32_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(uint8_t(v >> (8 * i)));
  };
  put(uint32_t(54 + row * height), 4), put(0, 4), put(54, 4), put(40, 4), put(uint32_t(width), 4);
  put(uint32_t(height), 4), put(1, 2), put(24, 2), put(0, 4), put(uint32_t(row * height), 4);
  put(2835, 4), put(2835, 4), put(0, 4), put(0, 4);
  const std::vector<uint8_t> pixels = gradient(row, height, 1);
  b.insert(b.end(), pixels.begin(), pixels.end());
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <folder>\n");
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* t : {"npy", "png", "jpeg", "bmp", "tiff", "nifti", "nifti_gz", "checkpoint", "split"})
    fs::create_directories(root / t);
  const auto at = [&](const char* target, const std::string& name) { return (root / target / name).string(); };

  const std::vector<uint8_t> bytes = gradient(12, 10, 3);
  const std::vector<float> values(bytes.begin(), bytes.end());
  io::write_npy(at("npy", "f32_hwc.npy"), {12, 10, 3}, values.data());
  io::write_npy(at("npy", "u8_hw.npy"), {12, 30}, bytes.data());
  for (int channels : {1, 2, 3, 4})
    io::write_png(at("png", "c" + std::to_string(channels) + ".png"), 9, 5, channels, gradient(9, 5, channels).data());
  write_jpeg(at("jpeg", "rgb.jpg"), 16, 12, 3);
  write_jpeg(at("jpeg", "grey.jpg"), 9, 7, 1);
  write_bmp(at("bmp", "rgb.bmp"), 5, 3);
  write_tiff(at("tiff", "grey8.tif"), 10, 9, 1, 8, COMPRESSION_NONE);
  write_tiff(at("tiff", "rgb8_lzw.tif"), 10, 9, 3, 8, COMPRESSION_LZW);
  write_tiff(at("tiff", "grey16_deflate.tif"), 7, 5, 1, 16, COMPRESSION_ADOBE_DEFLATE);
  io::Volume like;
  like.nx = 6, like.ny = 5, like.nz = 4;
  const std::vector<float> voxels(120, 3.5f);
  io::write_nifti(at("nifti", "f32.nii"), like, voxels, false);
  io::write_nifti(at("nifti", "u8.nii"), like, std::vector<float>(120, 1.0f), true);
  io::write_nifti(at("nifti_gz", "f32.nii.gz"), like, voxels, false);
  Checkpoint ck;
  ck.meta["model.depth"] = "2";
  ck.tensors.emplace_back("a", Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}));
  ck.tensors.emplace_back("b", Tensor::from_vector({0, 4}, {}));
  const std::string ckpt = at("checkpoint", "two.ckpt");
  save_checkpoint(ckpt, ck);
  // The fuzz target appends the CRC itself: the seed is the file without its last 4 bytes.
  fs::resize_file(ckpt, fs::file_size(ckpt) - 4);
  write_split(at("split", "split.txt"), Split{{"P0", "P1"}, {"P2"}});
  return 0;
}
