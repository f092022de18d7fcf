// wanrun: the command-line front end of wanrt. One catch site maps errors to exit codes.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bindings/cli/cli_common.h"
#include "bindings/cli/commands.h"
#include "runtime/error.h"
#include "runtime/version.h"

namespace {

struct Planned {
  const char* name;
  const char* summary;
  const char* issue;  // where the implementation is tracked, for the "not built yet" message
};

// Subcommands declared before they are built (none at present): each answers with a usage
// error naming the issue that tracks it.
const std::vector<Planned> kPlanned = {};

}  // namespace

int main(int argc, char** argv) {
  wanrt::cli::set_command_line(argc, argv);
  CLI::App app{"wanrun — run the Wan 2.2 video models on the machine you have", "wanrun"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("-V,--version", show_version, "Print the version and build information and exit");

  std::map<CLI::App*, wanrt::cli::CommandAction> actions;
  try {
    auto generate = wanrt::cli::add_generate_command(app);
    actions[app.get_subcommand("generate")] = std::move(generate);
    auto inspect = wanrt::cli::add_inspect_command(app);
    actions[app.get_subcommand("inspect")] = std::move(inspect);
    auto plan = wanrt::cli::add_plan_command(app);
    actions[app.get_subcommand("plan")] = std::move(plan);
    auto doctor = wanrt::cli::add_doctor_command(app);
    actions[app.get_subcommand("doctor")] = std::move(doctor);
    auto bench = wanrt::cli::add_bench_command(app);
    actions[app.get_subcommand("bench")] = std::move(bench);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error [internal]: {}\n", e.what());
    return wanrt::exit_code(wanrt::ErrorCategory::kInternal);
  }
  for (const auto& planned : kPlanned) {
    CLI::App* cmd = app.add_subcommand(planned.name, planned.summary);
    cmd->allow_extras();  // options are declared when the subcommand is implemented
    actions[cmd] = [planned] () -> int {
      throw wanrt::Error(wanrt::ErrorCategory::kUsage,
                         fmt::format("'wanrun {}' is not built yet in this version ({})",
                                     planned.name, wanrt::version()),
                         fmt::format("it is tracked by {}; see README.md for what works now",
                                     planned.issue));
    };
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
    for (CLI::App* sub : app.get_subcommands()) {
      const auto it = actions.find(sub);
      if (it != actions.end()) return it->second();
    }
    fmt::print("{}", app.help());
    return 0;
  } catch (const wanrt::Error& e) {
    fmt::print(stderr, "{}\n", wanrt::format_error(e));
    return wanrt::exit_code(e.category());
  } catch (const std::exception& e) {
    fmt::print(stderr, "error [internal]: {}\n", e.what());
    return wanrt::exit_code(wanrt::ErrorCategory::kInternal);
  }
}
