// One libFuzzer target per file reader; fuzz/CMakeLists.txt compiles this file once per reader
// with UNET_FUZZ_<NAME> and the reader's file extension (UNET_FUZZ_EXTENSION) defined. The fuzzer's bytes are written to a file with the reader's
// extension (the readers take paths, as the commands do) and read back. A clean exception is the
// expected end for bad bytes; a crash, a sanitizer report, a leak, a timeout or more than
// -rss_limit_mb of memory is a finding. std::bad_alloc counts as one: every reader must refuse an
// oversized claim before allocating.
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "train/io/files.h"
#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"
#include "train/split.h"

namespace {

constexpr const char* kExtension = UNET_FUZZ_EXTENSION;

// One file per fuzzing process (libFuzzer's -jobs run several), in memory when /dev/shm exists.
const std::string& input_path() {
  static const std::string path = (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm") : std::string("/tmp")) +
                                  "/unet-fuzz-" + std::to_string(getpid()) + kExtension;
  return path;
}

void write(const std::vector<uint8_t>& bytes) {
  std::ofstream out(input_path(), std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void read_input() {
#if defined(UNET_FUZZ_NPY)
  unet::io::read_npy(input_path());
#elif defined(UNET_FUZZ_NIFTI) || defined(UNET_FUZZ_NIFTI_GZ)
  unet::io::read_nifti(input_path());
#elif defined(UNET_FUZZ_CHECKPOINT)
  unet::load_checkpoint(input_path());
#elif defined(UNET_FUZZ_SPLIT)
  // Three patients to check the file's ids against.
  static const std::vector<unet::Sample> samples = [] {
    std::vector<unet::Sample> s(3);
    for (int i = 0; i < 3; ++i) s[std::size_t(i)].patient = "P" + std::to_string(i);
    return s;
  }();
  unet::read_split(input_path(), samples);
#else
  unet::io::read_image(input_path());
#endif
}

}  // namespace

// The readers' decoded-size limit, lowered from 512 MiB to 64 MiB: a genuine file that decodes to
// the full limit takes seconds under the sanitizers (a 121-megapixel progressive JPEG of 0.5 MB:
// 5 s, 0.9 GB), which a loaded machine turns into a spurious slow-unit or out-of-memory finding.
// The refusal logic is the same at either limit.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  unet::io::set_max_input_bytes(std::size_t(64) << 20);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
#if defined(UNET_FUZZ_CHECKPOINT)
  // A checkpoint ends with the CRC-32 of everything before it; appending it lets the fuzzer reach
  // the parser behind the checksum instead of spending its time on the checksum.
  const auto crc = uint32_t(crc32(0, bytes.data(), uInt(bytes.size())));
  for (int i = 0; i < 4; ++i) bytes.push_back(uint8_t(crc >> (8 * i)));
#endif
  write(bytes);
  try {
    read_input();
  } catch (const std::bad_alloc&) {
    std::abort();
  } catch (const std::exception&) {
  }
  return 0;
}
