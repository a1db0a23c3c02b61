// kill -9 at random moments of a training run, then --resume: the run must end with the same
// best.ckpt, last.ckpt and log.csv (minus its seconds column) as a run never interrupted. Three
// kill points by default (each a few seconds); UNET_KILL_TRIALS=N asks for N.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "tests/support/cli_run.h"
#include "tests/support/run_files.h"

namespace fs = std::filesystem;
using namespace unet;

namespace {

const std::string kTrain =
    " train --device cpu --threads 1 --data phantom:3 --epochs 5 --batch 2 --size 32 --base-filters 4 --depth 2 --out ";

// Starts the command, kills it with SIGKILL after `delay` (or lets it finish first).
void run_and_kill(const std::string& command, std::chrono::milliseconds delay) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command + " >/dev/null 2>&1").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::this_thread::sleep_for(delay);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

}  // namespace

TEST_CASE("kill -9 at random moments, then --resume, ends with byte-identical checkpoints and log", "[cli][resume][kill]") {
  test::TempDir dir("unet-kill-resume");
  const std::string binary = UNET_CLI_PATH;
  const test::CliResult whole = test::run_cli(kTrain.substr(1) + dir.file("whole"));
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> moment(50, 1500);  // ms: from data loading to the last epochs
  const char* asked = std::getenv("UNET_KILL_TRIALS");
  const int trials = asked ? std::max(1, std::atoi(asked)) : 3;
  for (int trial = 0; trial < trials; ++trial) {
    const std::string out = dir.file("killed" + std::to_string(trial));
    const int ms = moment(rng);
    INFO("killed after " << ms << " ms");
    run_and_kill(binary + kTrain + out, std::chrono::milliseconds(ms));
    const test::CliResult resumed = test::run_cli(kTrain.substr(1) + out + " --resume");
    INFO(resumed.output);
    REQUIRE(resumed.exit_code == 0);
    for (const char* name : {"best.ckpt", "last.ckpt"}) {
      INFO(name);
      CHECK(test::file_bytes(fs::path(out) / name) == test::file_bytes(dir.path / "whole" / name));
    }
    CHECK(test::log_without_seconds(fs::path(out) / "log.csv") == test::log_without_seconds(dir.path / "whole" / "log.csv"));
    for (const auto& entry : fs::directory_iterator(out)) CHECK(entry.path().filename().string().find(".tmp-") == std::string::npos);
  }
}
