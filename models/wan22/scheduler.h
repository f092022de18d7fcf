// Flow-matching samplers of Wan 2.2 (UniPC, the official default, and plain Euler), and the
// Euler sampler of the 4-step distilled models ("lightning"), ported from
// models/export/wanrt_export/scheduler.py with the same float32 arithmetic.
//
// Model output convention: the DiT predicts the flow velocity v of the straight path
// x(sigma) = (1 - sigma) x0 + sigma noise; the data prediction is x0 = sample - sigma v.
//
// Schedule (both samplers; Wan's FlowUniPCMultistepScheduler built at shift 1 then
// set_timesteps(steps, shift)): sigma_max = float32(1 - 1/num_train_timesteps);
// s_i = i * (-sigma_max / steps) + sigma_max in float64 (numpy linspace, endpoint dropped);
// s_i = shift s_i / (1 + (shift - 1) s_i); timesteps[i] = trunc(s_i * num_train_timesteps);
// sigmas = float32(s_0 .. s_{steps-1}, 0).
//
// Schedule of "lightning" (the Wan2.2-Lightning / LightX2V distilled LoRAs; docs/lora.md): the
// timesteps start at num_train_timesteps itself. In float32: t_i = float32(linspace(N, 0,
// steps + 1))[i], s_i = t_i / N, s_i = shift s_i / (1 + (shift - 1) s_i); the model sees
// t_i = s_i N unrounded (4 steps at shift 5: 1000, 937.5, 833.333, 625); sigmas = s_0 .. s_steps
// (the last is 0). The step is Euler's.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wanrt::wan22 {

/// A flow sampler: a schedule plus a step rule. Not thread-safe (multistep state).
class Scheduler {
 public:
  virtual ~Scheduler() = default;

  /// Builds the schedule and resets the multistep state. Throws Error(kUsage) when
  /// steps < 1 or shift <= 0 (or shift is not finite).
  virtual void set_timesteps(int steps, double shift) = 0;

  /// Timesteps fed to the model: [steps], descending. Whole numbers for unipc and euler (the
  /// official schedule truncates them); fractional for lightning.
  virtual const std::vector<double>& timesteps() const = 0;

  /// Float32 sigmas: steps + 1 values, the last 0.
  virtual const std::vector<float>& sigmas() const = 0;

  /// Advances `sample` from sigmas[index] to sigmas[index + 1] given the model's velocity.
  /// Steps must be called with index 0, 1, 2, ... ; index 0 restarts the multistep state.
  /// Throws Error(kInternal) when set_timesteps() was not called or the index is out of
  /// order. The result has the dtype of `sample`/`model_output` promoted with float32.
  virtual at::Tensor step(const at::Tensor& model_output, int index, const at::Tensor& sample) = 0;
};

/// Scheduler by name: "unipc" (UniPC-2 bh2, Wan's default), "euler" (first-order flow Euler)
/// or "lightning" (Euler on the distilled models' schedule). Unknown names throw
/// Error(kUsage) listing the known ones.
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, int num_train_timesteps = 1000);

/// The sampler names make_scheduler knows, in the order help texts list them.
const std::vector<std::string>& sampler_names();

}  // namespace wanrt::wan22
