// wanrun's subcommands: each registers its options on a CLI11 subcommand and runs from there.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace wanrt::cli {

/// A registered subcommand's action; returns the process exit code.
using CommandAction = std::function<int()>;

/// `wanrun generate`: prompt (and image) to video.
CommandAction add_generate_command(CLI::App& app);
/// `wanrun inspect BUNDLE`: components, parameters, bytes, dtypes, contract.
CommandAction add_inspect_command(CLI::App& app);
/// `wanrun plan`: dry run of the optimization planner (plan, estimate, reasons, guidance).
CommandAction add_plan_command(CLI::App& app);
/// `wanrun doctor`: this machine's resources and which models it can run.
CommandAction add_doctor_command(CLI::App& app);
/// `wanrun bench`: a matrix of memory plans on one request; time, memory peaks, deviation.
CommandAction add_bench_command(CLI::App& app);

}  // namespace wanrt::cli
