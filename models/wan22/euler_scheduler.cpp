// First-order flow Euler: x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v.
#include <ATen/ATen.h>

#include "models/wan22/flow_scheduler_base.h"

namespace wanrt::wan22 {
namespace {

class EulerScheduler final : public FlowSchedulerBase {
 public:
  using FlowSchedulerBase::FlowSchedulerBase;

  at::Tensor step(const at::Tensor& model_output, int index, const at::Tensor& sample) override {
    const int i = check_index(index);
    const at::Tensor dt = sigma(i + 1) - sigma(i);
    return sample + dt * model_output;
  }
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_scheduler(int num_train_timesteps) {
  return std::make_unique<EulerScheduler>(num_train_timesteps);
}

}  // namespace wanrt::wan22
