// JPEG decoding with libjpeg-turbo's TurboJPEG API: grey files as one channel, every other
// colour space as RGB, with the accurate integer IDCT. Damage that libjpeg would only warn
// about (a truncated scan, for one) is an error here: a half-grey slice is not training data.
// Progressive files are limited to 500 scans: each scan walks every block again, so a small file
// with hundreds of scans over a large image costs minutes to decode (libjpeg-turbo's advice for
// untrusted input). No scanner or converter writes more than a few dozen.
#include <turbojpeg.h>

#include <climits>
#include <memory>

#include "train/io/decoders.h"

namespace unet::io::detail {

Image decode_jpeg(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::unique_ptr<void, int (*)(tjhandle)> tj(tjInitDecompress(), tjDestroy);
  if (!tj) throw FileError(path, "cannot decode JPEG: " + std::string(tjGetErrorStr2(nullptr)));
  const auto fail = [&] { return FileError(path, "cannot decode JPEG: " + std::string(tjGetErrorStr2(tj.get()))); };
  Image image;
  int subsampling = 0, colourspace = 0;
  if (tjDecompressHeader3(tj.get(), bytes.data(), bytes.size(), &image.width, &image.height, &subsampling,
                          &colourspace) != 0)
    throw fail();
  image.channels = colourspace == TJCS_GRAY ? 1 : 3;
  check_decoded_size(path, "image of height x width x channels", {image.height, image.width, image.channels});
  std::vector<uint8_t> pixels(std::size_t(image.width) * std::size_t(image.height) * std::size_t(image.channels));
  if (tjDecompress2(tj.get(), bytes.data(), bytes.size(), pixels.data(), image.width, 0, image.height,
                    image.channels == 1 ? TJPF_GRAY : TJPF_RGB, TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
    throw fail();
  image.pixels.assign(pixels.begin(), pixels.end());
  return image;
}

}  // namespace unet::io::detail
