// `unet profile`: the per-kernel table and the Chrome trace it writes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;

namespace {
const char* kSmallModel = "--size 16 --depth 2 --base-filters 4 --batch 2 --device cpu --threads 1";
}

TEST_CASE("unet profile prints one row per kernel and writes a trace that names them", "[cli][profile]") {
  unet::test::TempDir dir("unet-profile-test");
  const std::string trace = dir.file("trace.json");
  const auto r = unet::test::run_cli(std::string("profile ") + kSmallModel + " --steps 2 --trace " + trace);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("step 2/2:"));
  CHECK_THAT(r.output, Catch::Contains("conv2d_backward_filter") && Catch::Contains("adam_update"));
  CHECK_THAT(r.output, Catch::Contains("all kernels") && Catch::Contains("training steps (wall)"));
  CHECK_THAT(r.output, Catch::Contains("forward") && Catch::Contains("backward"));
  REQUIRE(fs::exists(trace));
  std::stringstream json;
  json << std::ifstream(trace).rdbuf();
  CHECK(json.str().rfind("{\"displayTimeUnit\"", 0) == 0);
  CHECK_THAT(json.str(), Catch::Contains("\"name\":\"train_step\"") && Catch::Contains("\"name\":\"conv2d_forward\""));
  CHECK_THAT(json.str(), Catch::EndsWith("}}\n"));
}

TEST_CASE("unet profile rejects bad flags and leaves no trace behind on failure", "[cli][profile]") {
  unet::test::TempDir dir("unet-profile-bad");
  const auto steps = unet::test::run_cli(std::string("profile ") + kSmallModel + " --steps 0");
  CHECK(steps.exit_code == 2);
  CHECK_THAT(steps.output, Catch::Contains("--steps"));
  const auto size = unet::test::run_cli("profile --size 18 --depth 2 --device cpu");
  CHECK(size.exit_code == 2);
  CHECK_THAT(size.output, Catch::Contains("--size must be") && Catch::Contains("multiple of 2^depth = 4"));
  const std::string unwritable = dir.file("missing-folder/trace.json");
  const auto write = unet::test::run_cli(std::string("profile ") + kSmallModel + " --steps 1 --trace " + unwritable);
  CHECK(write.exit_code == 1);
  CHECK_THAT(write.output, Catch::Contains("missing-folder"));
  CHECK_FALSE(fs::exists(unwritable));
}
