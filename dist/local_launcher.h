// Starts the ranks of a run on this machine (`wanrun generate --ranks N`): N copies of a
// command, each with the torchrun variables set and a FileStore in a fresh temporary folder to
// meet at. When one rank fails or is killed the others are stopped, so no rank waits forever.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace wanrt::dist {

struct LaunchOptions {
  int ranks = 2;
  /// The command: argv[0] is the executable's path (not searched in PATH).
  std::vector<std::string> argv;
  /// After a rank fails: how long the others get after SIGTERM before SIGKILL.
  std::chrono::milliseconds grace{std::chrono::seconds(10)};
  /// Polled while the ranks run; when it returns true every rank gets SIGTERM (the caller's
  /// SIGINT/SIGTERM is forwarded this way).
  std::function<bool()> cancelled;
  /// Extra environment for every rank (NAME=VALUE).
  std::vector<std::string> env;
};

/// What the ranks did.
struct LaunchOutcome {
  int exit_code = 0;    ///< 0 when all ranks succeeded, else the first failing rank's code
  int failed_rank = -1;  ///< the first rank that failed (-1: none)
  std::vector<int> pids;  ///< the ranks' process ids, in rank order
};

/// Runs the ranks and waits for all of them. A rank killed by signal s counts as exit code
/// 128 + s. Error(kResources) when a process cannot be started (the ones started are stopped).
LaunchOutcome launch_local_ranks(const LaunchOptions& options);

}  // namespace wanrt::dist
