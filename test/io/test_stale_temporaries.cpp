// Temporaries left by a writer killed with SIGKILL: the next write to the same output removes
// those of dead processes on this host, and nothing else.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "io/stale_temporaries.h"
#include "io/video_writer.h"
#include "support/catch.h"
#include "support/tiny_bundles.h"

namespace fs = std::filesystem;

namespace {

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

void touch(const fs::path& path) { std::ofstream(path) << "partial"; }

// A process id that existed a moment ago and has ended (reaped).
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

std::string host() {
  char buffer[256] = {};
  REQUIRE(::gethostname(buffer, sizeof(buffer) - 1) == 0);
  return buffer;
}

}  // namespace

TEST_CASE("a temporary of a killed writer goes with the next write to that output", "[io]") {
  wanrt_test::TempDir dir;
  const std::string me = host();
  CHECK(wanrt::temporary_owner_tag() == me + "." + std::to_string(::getpid()));
  const long dead = dead_pid();
  const std::string stale = ".video.pt.tmp." + me + "." + std::to_string(dead) + ".Ab12Cd";
  const std::set<std::string> kept = {
      ".video.pt.tmp." + me + "." + std::to_string(::getpid()) + ".Xy34Zw",  // running: us
      ".video.pt.tmp.other.host.example." + std::to_string(dead) + ".Ab12Cd",  // another host
      ".video.pt.old." + me + "." + std::to_string(dead) + ".Ab12Cd",  // a set-aside old output
      ".other.pt.tmp." + me + "." + std::to_string(dead) + ".Ab12Cd",  // another output
      ".video.pt.tmp." + me + ".12x.Ab12Cd",                           // not a process id
  };
  touch(dir.path() / stale);
  for (const std::string& name : kept) touch(dir.path() / name);

  wanrt::write_file_atomic((dir.path() / "video.pt").string(), "frames");
  std::set<std::string> expected = kept;
  expected.insert("video.pt");
  CHECK(entries(dir.path()) == expected);
  CHECK(wanrt::remove_stale_temporaries(dir.path().string(), "video.pt") == 0);

  // Directly: the count of what went.
  touch(dir.path() / stale);
  CHECK(wanrt::remove_stale_temporaries(dir.path().string(), "video.pt") == 1);
  CHECK(wanrt::remove_stale_temporaries((dir.path() / "missing").string(), "video.pt") == 0);
}
