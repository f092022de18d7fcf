// The plan settings a user can fix on the command line (`wanrun plan` and `wanrun generate`):
// --device, --dtype, --offload, --blocks-resident, --prefetch, --text-encoder, --attention,
// --host-residency.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "optim/optim_types.h"

namespace wanrt::cli {

/// The flags as given (empty / unset: the planner's choice).
struct PlanFlags {
  std::string device, dtype, offload, text_encoder, attention, host_residency;
  std::optional<int> blocks_resident, prefetch;

  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// The settings they fix; Error(kUsage) naming the flag for a bad value.
  PlanSettings settings() const;
  /// Whether any flag was given.
  bool any() const;
};

}  // namespace wanrt::cli
