// Internal: the schedule and step bookkeeping shared by the UniPC and Euler samplers.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "models/wan22/scheduler.h"

namespace wanrt::wan22 {

/// Error(kUsage) for steps < 1 or a shift that is not a finite number > 0.
void check_schedule(int steps, double shift);

/// The float64 shifted sigmas s_0..s_{steps-1} (without the final zero); see scheduler.h.
/// Throws Error(kUsage) for steps < 1 or shift <= 0.
std::vector<double> shifted_sigmas(int steps, double shift, int num_train_timesteps);

class FlowSchedulerBase : public Scheduler {
 public:
  explicit FlowSchedulerBase(int num_train_timesteps);

  void set_timesteps(int steps, double shift) override;
  const std::vector<double>& timesteps() const override { return timesteps_; }
  const std::vector<float>& sigmas() const override { return sigmas_; }

 protected:
  int num_steps() const noexcept { return static_cast<int>(timesteps_.size()); }
  /// sigmas[i] as a 0-d float32 CPU tensor, like Python's `self.sigmas[i]`.
  at::Tensor sigma(int i) const { return sigma_tensor_[i]; }
  /// Validates the step order (index 0 calls reset()); returns the index.
  int check_index(int index);
  /// Clears the multistep state; overrides must call the base.
  virtual void reset() { next_index_ = 0; }
  /// The schedule: model timesteps [steps] and float32 sigmas [steps + 1] (the last 0). The
  /// default is the official one (scheduler.h); steps and shift are already validated.
  virtual void build(int steps, double shift, int num_train_timesteps,
                     std::vector<double>& timesteps, std::vector<float>& sigmas) const;

 private:
  int num_train_timesteps_;
  std::vector<double> timesteps_;
  std::vector<float> sigmas_;
  at::Tensor sigma_tensor_;
  int next_index_ = 0;
};

std::unique_ptr<Scheduler> make_unipc_scheduler(int num_train_timesteps);
std::unique_ptr<Scheduler> make_euler_scheduler(int num_train_timesteps);
std::unique_ptr<Scheduler> make_lightning_scheduler(int num_train_timesteps);

}  // namespace wanrt::wan22
