// Component independence: which components can run alone and where, derived from the
// requirements (roles, contract inputs, capabilities, sizes), and the fallback configurations
// that this allows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "optim/memory_estimate.h"
#include "optim/model_requirements.h"

namespace wanrt {

/// One component as a unit that can run by itself.
struct ComponentIndependence {
  std::string component;
  ComponentRole role = ComponentRole::kOther;
  std::vector<std::string> devices;  ///< where it can run: "cpu", "cuda"
  std::vector<std::string> needs;    ///< inputs it needs from elsewhere
  std::int64_t bytes = 0;            ///< weights as stored
  int blocks = 0;                    ///< streamable blocks (0: moves as a whole)
  /// With a budget: whether its weights alone fit the device (capacity minus reserve) / host.
  bool fits_device_alone = false, fits_host_alone = false;
  std::string summary;  ///< one line: what it runs alone with
};

/// A way to run the pipeline that component independence allows.
struct FallbackConfiguration {
  std::string name;         ///< e.g. "text encoder on the CPU"
  std::string description;  ///< what changes, with the bytes it saves
  bool applicable = false;  ///< the model's components allow it
};

/// The component-independence report (docs/architecture.md, "The optimization layer").
struct IndependenceReport {
  std::vector<ComponentIndependence> components;
  std::vector<FallbackConfiguration> fallbacks;
};

/// Derives the report; `budget` (optional) adds the fits flags.
IndependenceReport analyze_independence(const ModelRequirements& requirements,
                                        const Budget* budget = nullptr);

}  // namespace wanrt
