// The local launcher: N copies of a shell command with the torchrun variables set; the first
// failure stops the others. Bounded by the grace period, never by a sleep in the test.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dist/local_launcher.h"
#include "support/catch.h"
#include "support/tiny_bundles.h"

using namespace wanrt::dist;

namespace {

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

LaunchOptions shell(const std::string& script, int ranks) {
  LaunchOptions o;
  o.ranks = ranks;
  o.argv = {"/bin/sh", "-c", script};
  return o;
}

}  // namespace

TEST_CASE("every rank gets its place in the run and one store to meet at", "[dist]") {
  wanrt_test::TempDir dir;
  LaunchOptions o = shell(
      "echo \"$RANK $WORLD_SIZE $LOCAL_RANK $LOCAL_WORLD_SIZE\" > \"$OUT/r$RANK\"; "
      "dirname \"$WANRT_STORE_FILE\" > \"$OUT/store$RANK\"",
      3);
  o.env = {"OUT=" + dir.path().string()};
  const LaunchOutcome out = launch_local_ranks(o);
  CHECK(out.exit_code == 0);
  CHECK(out.failed_rank == -1);
  CHECK(out.pids.size() == 3);
  for (int r = 0; r < 3; ++r) {
    CHECK(read(dir.path() / ("r" + std::to_string(r))) == fmt::format("{} 3 {} 3\n", r, r));
  }
  const std::string store = read(dir.path() / "store0");
  CHECK(read(dir.path() / "store1") == store);
  CHECK(read(dir.path() / "store2") == store);
  // The store's folder is gone once the ranks have ended.
  CHECK_FALSE(std::filesystem::exists(store.substr(0, store.size() - 1)));
}

TEST_CASE("a failing rank stops the others and its exit code is reported", "[dist]") {
  // Rank 1 fails at once; rank 0 would sleep for a minute unless stopped.
  LaunchOptions o = shell("if [ \"$RANK\" = 1 ]; then exit 7; fi; exec sleep 60", 2);
  o.grace = std::chrono::seconds(5);
  const auto start = std::chrono::steady_clock::now();
  const LaunchOutcome out = launch_local_ranks(o);
  CHECK(out.failed_rank == 1);
  CHECK(out.exit_code == 7);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(50));
  // Every rank has been waited for: none is left running.
  for (int pid : out.pids) CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("a rank that ignores SIGTERM is killed after the grace period", "[dist]") {
  LaunchOptions o =
      shell("if [ \"$RANK\" = 0 ]; then exit 3; fi; trap '' TERM; sleep 60 & wait; sleep 60", 2);
  o.grace = std::chrono::milliseconds(500);
  const LaunchOutcome out = launch_local_ranks(o);
  CHECK(out.failed_rank == 0);
  CHECK(out.exit_code == 3);
  for (int pid : out.pids) CHECK(::kill(pid, 0) != 0);
}

TEST_CASE("a rank killed by a signal counts as 128 + the signal", "[dist]") {
  const LaunchOutcome out = launch_local_ranks(shell("kill -KILL $$", 1));
  CHECK(out.exit_code == 128 + SIGKILL);
}

TEST_CASE("cancelling the launcher stops every rank", "[dist]") {
  LaunchOptions o = shell("exec sleep 60", 2);
  int polls = 0;
  o.cancelled = [&polls] { return ++polls > 3; };
  const LaunchOutcome out = launch_local_ranks(o);
  CHECK(out.exit_code == 128 + SIGTERM);
  for (int pid : out.pids) CHECK(::kill(pid, 0) != 0);
}
