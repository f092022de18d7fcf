// Plan settings as the interfaces receive them (text and optional numbers), parsed once for
// wanrun's flags, the C API's open options and the Python keyword arguments.
#pragma once

#include <optional>
#include <string>

#include "optim/optim_types.h"

namespace wanrt::bindings {

/// Settings as text; empty strings and unset numbers are the planner's to choose.
struct PlanSettingsText {
  std::string device;          ///< cpu | cuda | cuda:N
  std::string dtype;           ///< fp32 | bf16 | fp16
  std::string offload;         ///< none | model | sequential | full
  std::string text_encoder;    ///< device | offload | cpu
  std::string attention;       ///< math | sdpa
  std::string host_residency;  ///< all | on_demand | disk
  std::string vae_dtype;       ///< fp32 | bf16 | fp16
  std::optional<int> blocks_resident;
  std::optional<int> prefetch;

  /// Whether any setting is given.
  bool any() const;
};

/// Parses `text`; Error(kUsage) naming `prefix` + the setting ("--dtype", "dtype") and the
/// accepted values for a bad one.
PlanSettings parse_plan_settings(const PlanSettingsText& text, const std::string& prefix);

}  // namespace wanrt::bindings
