// Schedule construction shared by the samplers, and the factory. Compiled with
// -ffp-contract=off (models/CMakeLists.txt): the float64 formulas must round exactly like
// Python's, so no multiply-add may be fused.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include "models/wan22/flow_scheduler_base.h"
#include "runtime/error.h"

namespace wanrt::wan22 {

void check_schedule(int steps, double shift) {
  if (steps < 1) {
    throw Error(ErrorCategory::kUsage, fmt::format("--steps must be >= 1, got {}", steps),
                "Wan 2.2 uses 40 steps (T2V/I2V A14B) or 50 (TI2V-5B)");
  }
  if (!(shift > 0.0) || !std::isfinite(shift)) {
    throw Error(ErrorCategory::kUsage, fmt::format("--shift must be > 0, got {}", shift),
                "Wan 2.2 uses shift 12 (T2V-A14B), 5 (I2V-A14B, TI2V-5B)");
  }
}

std::vector<double> shifted_sigmas(int steps, double shift, int num_train_timesteps) {
  check_schedule(steps, shift);
  // The official training schedule is float64 then cast to float32; its ends are exact.
  const double sigma_max = static_cast<double>(static_cast<float>(1.0 - 1.0 / num_train_timesteps));
  const double sigma_min = 0.0;
  const double delta = (sigma_min - sigma_max) / steps;
  std::vector<double> out;
  out.reserve(static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    const double s = static_cast<double>(i) * delta + sigma_max;
    out.push_back(shift * s / (1.0 + (shift - 1.0) * s));
  }
  return out;
}

FlowSchedulerBase::FlowSchedulerBase(int num_train_timesteps)
    : num_train_timesteps_(num_train_timesteps) {
  if (num_train_timesteps < 2) {
    throw Error(ErrorCategory::kUsage,
                fmt::format("num_train_timesteps must be >= 2, got {}", num_train_timesteps));
  }
}

void FlowSchedulerBase::build(int steps, double shift, int num_train_timesteps,
                              std::vector<double>& timesteps, std::vector<float>& sigmas) const {
  for (double v : shifted_sigmas(steps, shift, num_train_timesteps)) {
    // Truncated to a whole number, as the official code casts to int64.
    timesteps.push_back(std::trunc(v * static_cast<double>(num_train_timesteps)));
    sigmas.push_back(static_cast<float>(v));
  }
  sigmas.push_back(0.0f);
}

void FlowSchedulerBase::set_timesteps(int steps, double shift) {
  check_schedule(steps, shift);
  timesteps_.clear();
  sigmas_.clear();
  build(steps, shift, num_train_timesteps_, timesteps_, sigmas_);
  sigma_tensor_ = at::tensor(sigmas_, at::kFloat);
  reset();
}

int FlowSchedulerBase::check_index(int index) {
  if (num_steps() == 0) {
    throw Error(ErrorCategory::kInternal, "scheduler: set_timesteps() must precede step()");
  }
  if (index == 0) reset();
  if (index != next_index_ || index >= num_steps()) {
    throw Error(ErrorCategory::kInternal,
                fmt::format("scheduler: step index {} out of order (expected {} of {})", index,
                            next_index_, num_steps()));
  }
  next_index_ = index + 1;
  return index;
}

const std::vector<std::string>& sampler_names() {
  static const std::vector<std::string> names{"unipc", "euler", "lightning"};
  return names;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, int num_train_timesteps) {
  if (name == "unipc") return make_unipc_scheduler(num_train_timesteps);
  if (name == "euler") return make_euler_scheduler(num_train_timesteps);
  if (name == "lightning") return make_lightning_scheduler(num_train_timesteps);
  throw Error(ErrorCategory::kUsage, fmt::format("unknown sampler '{}'", name),
              "known samplers: unipc (Wan's default), euler, lightning (4-step distilled LoRAs)");
}

}  // namespace wanrt::wan22
