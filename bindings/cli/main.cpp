// wanrun: the command-line front end of wanrt. One catch site maps errors to exit codes.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/version.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  const char* issue;  // where its implementation is tracked, for the "not built yet" message
};

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> list = {
      {"generate", "Generate a video from a prompt (and an image for TI2V/I2V)",
       "the generation issue"},
      {"plan", "Dry run: show the optimization plan and memory estimate for a request",
       "the optimization issue"},
      {"doctor", "Show what this machine has and which models it can run",
       "the optimization issue"},
      {"inspect", "Show a bundle's components, parameters, bytes, dtypes and contract",
       "the generation issue"},
      {"bench", "Measure VRAM/speed trade-offs over a matrix of plans", "the bench issue"},
  };
  return list;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wanrun — run the Wan 2.2 video models on the machine you have", "wanrun"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("-V,--version", show_version, "Print the version and build information and exit");

  std::string chosen;
  for (const auto& sub : subcommands()) {
    CLI::App* cmd = app.add_subcommand(sub.name, sub.summary);
    cmd->allow_extras();  // options are declared when the subcommand is implemented
    cmd->callback([&chosen, name = std::string(sub.name)] { chosen = name; });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : wanrt::exit_code(wanrt::ErrorCategory::kUsage);
  }

  try {
    if (show_version) {
      fmt::print("{}\n", wanrt::build_info());
      return 0;
    }
    if (chosen.empty()) {
      fmt::print("{}", app.help());
      return 0;
    }
    for (const auto& sub : subcommands()) {
      if (chosen == sub.name) {
        throw wanrt::Error(wanrt::ErrorCategory::kUsage,
                           fmt::format("'wanrun {}' is not built yet in this version ({})",
                                       sub.name, wanrt::version()),
                           fmt::format("it is tracked by {}; see README.md for what works now",
                                       sub.issue));
      }
    }
    return 0;
  } catch (const wanrt::Error& e) {
    fmt::print(stderr, "{}\n", wanrt::format_error(e));
    return wanrt::exit_code(e.category());
  } catch (const std::exception& e) {
    fmt::print(stderr, "error [internal]: {}\n", e.what());
    return wanrt::exit_code(wanrt::ErrorCategory::kInternal);
  }
}
