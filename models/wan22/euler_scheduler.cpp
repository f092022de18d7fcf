// First-order flow Euler: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v, on the official schedule
// ("euler") or on the 4-step distilled models' ("lightning"; scheduler.h). Compiled with
// -ffp-contract=off like scheduler.cpp: the lightning schedule must round exactly as PyTorch's
// element-wise float32 ops do, one operation at a time.
#include <ATen/ATen.h>

#include "models/wan22/flow_scheduler_base.h"

namespace wanrt::wan22 {
namespace {

class EulerScheduler : public FlowSchedulerBase {
 public:
  using FlowSchedulerBase::FlowSchedulerBase;

  at::Tensor step(const at::Tensor& model_output, int index, const at::Tensor& sample) override {
    const int i = check_index(index);
    const at::Tensor dt = sigma(i + 1) - sigma(i);
    return sample + dt * model_output;
  }
};

class LightningScheduler final : public EulerScheduler {
 public:
  using EulerScheduler::EulerScheduler;

 protected:
  void build(int steps, double shift, int num_train_timesteps, std::vector<double>& timesteps,
             std::vector<float>& sigmas) const override {
    // numpy.linspace(N, 0, steps + 1, dtype=float32): computed in float64 (i * step + start,
    // the end point exact), then rounded to float32.
    const double n = static_cast<double>(num_train_timesteps);
    const double delta = (0.0 - n) / steps;
    const float n_f = static_cast<float>(num_train_timesteps);
    const float shift_f = static_cast<float>(shift);
    const float shift_m1 = static_cast<float>(shift - 1.0);
    for (int i = 0; i <= steps; ++i) {
      const float t = i == steps ? 0.0f : static_cast<float>(static_cast<double>(i) * delta + n);
      const float s = t / n_f;
      const float shifted = (shift_f * s) / (1.0f + shift_m1 * s);
      sigmas.push_back(shifted);
      if (i < steps) timesteps.push_back(static_cast<double>(shifted * n_f));
    }
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_scheduler(int num_train_timesteps) {
  return std::make_unique<EulerScheduler>(num_train_timesteps);
}

std::unique_ptr<Scheduler> make_lightning_scheduler(int num_train_timesteps) {
  return std::make_unique<LightningScheduler>(num_train_timesteps);
}

}  // namespace wanrt::wan22
