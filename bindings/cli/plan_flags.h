// The plan settings a user can fix on the command line (`wanrun plan` and `wanrun generate`):
// --device, --dtype, --offload, --blocks-resident, --prefetch, --text-encoder, --attention,
// --host-residency, --vae-dtype.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "bindings/common/plan_settings_text.h"
#include "optim/optim_types.h"

namespace wanrt::cli {

/// The flags as given (empty / unset: the planner's choice).
struct PlanFlags : bindings::PlanSettingsText {
  /// Registers the flags on `cmd`.
  void add_to(CLI::App* cmd);
  /// The settings they fix; Error(kUsage) naming the flag for a bad value.
  PlanSettings settings() const { return bindings::parse_plan_settings(*this, "--"); }
};

}  // namespace wanrt::cli
