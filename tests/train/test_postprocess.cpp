// Connected-component post-processing on hand-made masks: face connectivity in 2-D and 3-D,
// keep-largest with its tie rule, the size threshold, and the flag's spelling.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "train/postprocess.h"

using namespace unet;

namespace {

// A mask from rows of '#' (tumour) and '.' (background); slices separated by an empty string.
std::vector<float> mask_of(const std::vector<std::string>& rows) {
  std::vector<float> m;
  for (const std::string& row : rows)
    for (char c : row) m.push_back(c == '#' ? 1.0f : 0.0f);
  return m;
}

}  // namespace

TEST_CASE("components connect through faces, not corners, in 2-D", "[postprocess]") {
  const std::vector<float> m = mask_of({"##..",
                                        "##..",
                                        "..#.",
                                        "...#"});
  std::vector<int> labels;
  std::vector<long long> sizes;
  REQUIRE(label_components(m, 1, 4, 4, labels, sizes) == 3);
  CHECK(sizes == std::vector<long long>{4, 1, 1});
  CHECK(labels[0] == 1);
  CHECK(labels[2 * 4 + 2] == 2);
  CHECK(labels[3 * 4 + 3] == 3);
  CHECK(labels[1] == 1);
  CHECK(labels[2] == 0);
}

TEST_CASE("components connect across neighbouring slices in 3-D", "[postprocess]") {
  // Two slices of 3x3: a voxel above another joins it; one diagonal to it does not.
  const std::vector<float> m = mask_of({"#..", "...", "..#",
                                        "#..", "...", ".#."});
  std::vector<int> labels;
  std::vector<long long> sizes;
  REQUIRE(label_components(m, 2, 3, 3, labels, sizes) == 3);
  CHECK(sizes == std::vector<long long>{2, 1, 1});
  CHECK(labels[0] == labels[9]);
}

TEST_CASE("keep-largest keeps one component, the first in scan order on a tie", "[postprocess]") {
  std::vector<float> m = mask_of({"#..#",
                                  "#..#",
                                  "....",
                                  "###."});
  CHECK(apply_postprocess({PostProcess::Kind::largest, 0}, m, 1, 4, 4) == 4);
  CHECK(m == mask_of({"....",
                      "....",
                      "....",
                      "###."}));
  std::vector<float> tie = mask_of({"#.#"});
  CHECK(apply_postprocess({PostProcess::Kind::largest, 0}, tie, 1, 1, 3) == 1);
  CHECK(tie == mask_of({"#.."}));
}

TEST_CASE("min:N removes exactly the components under N voxels", "[postprocess]") {
  std::vector<float> m = mask_of({"#..##",
                                  "...##",
                                  "###..",
                                  ".....",
                                  "....#"});
  const std::vector<float> before = m;
  CHECK(apply_postprocess(PostProcess::parse("min:3"), m, 1, 5, 5) == 1 + 1);  // the single voxels go
  CHECK(m == mask_of({"...##",
                      "...##",
                      "###..",
                      ".....",
                      "....."}));
  std::vector<float> unchanged = before;
  CHECK(apply_postprocess(PostProcess::parse("min:1"), unchanged, 1, 5, 5) == 0);
  CHECK(unchanged == before);
  std::vector<float> none = before;
  CHECK(apply_postprocess(PostProcess::parse("none"), none, 1, 5, 5) == 0);
  CHECK(none == before);
  std::vector<float> empty(9, 0.0f);
  CHECK(apply_postprocess(PostProcess::parse("largest"), empty, 1, 3, 3) == 0);
}

TEST_CASE("post-processing rules parse and print the same spelling", "[postprocess]") {
  for (const char* text : {"none", "largest", "min:1", "min:250"}) CHECK(PostProcess::parse(text).to_string() == text);
  for (const char* bad : {"", "min:", "min:0", "min:-3", "min:2x", "Largest", "min:99999999999999999999"})
    CHECK_THROWS_AS(PostProcess::parse(bad), std::invalid_argument);
}
