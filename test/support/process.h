// Running helper programs (ffmpeg, ffprobe, python) from tests.
#pragma once

#include <array>
#include "support/catch.h"
#include <cstdio>
#include <cstdlib>
#include <string>

namespace wanrt_test {

/// Runs a shell command, returns its stdout; fails the test when it exits non-zero.
inline std::string run_command(const std::string& command) {
  std::string output;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  INFO(command << "\n" << output);
  REQUIRE(status == 0);
  return output;
}

/// True when `name` is on PATH.
inline bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace wanrt_test
