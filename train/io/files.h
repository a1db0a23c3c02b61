// What the file readers and writers of train/io share: the one exception type, whole-file reads
// and atomic writes, and the non-finite check.
//
// Every failure is a FileError whose message starts with the path, then says what is wrong with
// that file ("<path>: truncated: expected 4096 bytes of data, got 100"), so that a training run
// over thousands of files stops with a message that leads straight to the culprit.
//
// Writes are atomic: the bytes go to a temporary file in the destination's folder (the same file
// system, so the final rename(2) cannot turn into a copy), which is flushed to disk and renamed
// over the destination. A reader, or a crash, sees the old file or the complete new one, never a
// partial one, and a failed write leaves nothing behind.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace unet::io {

class FileError : public std::runtime_error {
 public:
  FileError(const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem) {}
};

// The whole content of a file. Throws for a missing file, a folder, an unreadable or empty file
// (no format read here has a valid empty file, and "empty file" is the clearest diagnosis).
std::vector<uint8_t> read_file(const std::string& path);

// Throws unless `path` names a readable, non-empty regular file; for readers that open the file
// through a library (libtiff, zlib) but should report these cases like read_file does.
void check_readable(const std::string& path);

// Replaces `path` by `bytes` atomically (see above).
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

// True when `path` ends with `suffix`, ignoring ASCII case (".TIF" is as common as ".tif").
bool ends_with_icase(const std::string& path, std::string_view suffix);

// The most a reader may decode from one file, in bytes of float values (an image's pixels times
// channels, a volume's voxels, times 4). Readers check the dimensions a header declares against
// it before they allocate anything, so that a 200-byte file claiming 65536 x 65536 pixels, or a
// small .nii.gz that inflates to gigabytes, fails at once with its path. 512 MiB by default
// (a 240x240x155 MRI volume is 36 MB); the commands' --max-input-mb raises it.
std::size_t max_input_bytes();
void set_max_input_bytes(std::size_t bytes);

// Throws unless every size in `dims` is at least 1 and their product, as floats, fits the limit
// above. `what` names the dimensions in the message ("image of height x width x channels").
void check_decoded_size(const std::string& path, const std::string& what,
                        const std::vector<int64_t>& dims);

// True when any value is NaN or infinite. Readers return what the file holds; whether such a
// value is an error is the caller's decision.
bool has_non_finite(const std::vector<float>& values);

}  // namespace unet::io
