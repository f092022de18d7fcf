// UniPC-2 (bh2, data prediction) for flow velocity models, as used by Wan 2.2: one UniC
// correction (from the second step on) then one UniP prediction per step, lower order on the
// first and last steps. Every scalar coefficient is a float32 0-d tensor computed with the
// same ATen ops in the same order as scheduler.py, so results agree with it bit for bit.
#include <ATen/ATen.h>

#include <algorithm>

#include "models/wan22/flow_scheduler_base.h"

namespace wanrt::wan22 {
namespace {

// Half log-SNR of the flow path: log(alpha) - log(sigma), alpha = 1 - sigma.
at::Tensor lambda_of(const at::Tensor& sigma) {
  const at::Tensor alpha = at::rsub(sigma, 1);
  return at::log(alpha) - at::log(sigma);
}

at::Tensor scalar_like(double value, const at::Tensor& like) {
  return at::scalar_tensor(value, at::TensorOptions().dtype(like.scalar_type()));
}

// The first-order (DPM-Solver-1) part shared by UniP and UniC, from sigma_s0 to sigma_t with
// the data prediction m0; the higher-order terms build on its coefficients.
struct FirstOrder {
  at::Tensor alpha_t, lambda_s0, h, hh;
  at::Tensor h_phi_1;  // h * phi_1(hh) = expm1(hh)
  at::Tensor b_h;      // B(h) of the bh2 variant: expm1(hh) as well
  at::Tensor x_t;
};

FirstOrder first_order(const at::Tensor& x, const at::Tensor& m0, const at::Tensor& sigma_s0,
                       const at::Tensor& sigma_t) {
  FirstOrder f;
  f.alpha_t = at::rsub(sigma_t, 1);
  f.lambda_s0 = lambda_of(sigma_s0);
  f.h = lambda_of(sigma_t) - f.lambda_s0;
  f.hh = -f.h;
  f.h_phi_1 = at::expm1(f.hh);
  f.b_h = f.h_phi_1;
  f.x_t = sigma_t / sigma_s0 * x - f.alpha_t * f.h_phi_1 * m0;
  return f;
}

class UniPCScheduler final : public FlowSchedulerBase {
 public:
  using FlowSchedulerBase::FlowSchedulerBase;

  at::Tensor step(const at::Tensor& model_output, int index, const at::Tensor& sample) override {
    const int i = check_index(index);
    const at::Tensor x0_pred = sample - sigma(i) * model_output;
    at::Tensor x = sample;
    if (i > 0 && last_sample_.defined()) x = correct(x0_pred, i, this_order_);

    x0_older_ = x0_newest_;
    x0_newest_ = x0_pred;
    int order = std::min(kSolverOrder, num_steps() - i);  // lower order on the final step
    order = std::min(order, lower_order_nums_ + 1);       // multistep warm-up
    this_order_ = order;
    last_sample_ = x;
    at::Tensor prev = predict(x, i, order);
    if (lower_order_nums_ < kSolverOrder) ++lower_order_nums_;
    return prev;
  }

 protected:
  void reset() override {
    FlowSchedulerBase::reset();
    x0_older_ = at::Tensor();
    x0_newest_ = at::Tensor();
    last_sample_ = at::Tensor();
    lower_order_nums_ = 0;
    this_order_ = 0;
  }

 private:
  static constexpr int kSolverOrder = 2;

  // UniP from sigma_i to sigma_{i+1}.
  at::Tensor predict(const at::Tensor& x, int i, int order) const {
    const at::Tensor& m0 = x0_newest_;
    const FirstOrder f = first_order(x, m0, sigma(i), sigma(i + 1));
    if (order != 2) return f.x_t;
    const at::Tensor rk = (lambda_of(sigma(i - 1)) - f.lambda_s0) / f.h;
    const at::Tensor d1 = (x0_older_ - m0) / rk;
    // Order-2 UniP uses the fixed rho = 0.5 (the official "simplified version").
    return f.x_t - f.alpha_t * f.b_h * (scalar_like(0.5, x) * d1);
  }

  // UniC: recompute the step sigma_{i-1} -> sigma_i with the new x0 prediction `model_t`.
  at::Tensor correct(const at::Tensor& model_t, int i, int order) const {
    const at::Tensor& x = last_sample_;
    const at::Tensor& m0 = x0_newest_;
    const FirstOrder f = first_order(x, m0, sigma(i - 1), sigma(i));
    const at::Tensor &alpha_t = f.alpha_t, &h = f.h, &hh = f.hh, &b_h = f.b_h, &x_t = f.x_t;
    const at::Tensor d1_t = model_t - m0;
    if (order == 1) {
      return x_t - alpha_t * b_h * (scalar_like(0.5, x) * d1_t);
    }
    const at::Tensor rk = (lambda_of(sigma(i - 2)) - f.lambda_s0) / h;
    const at::Tensor d1 = (x0_older_ - m0) / rk;
    // b_k = (k-1)! * h*phi_k(hh) / B(h), with h*phi_1 = expm1(hh) and the recursion
    // phi_{k+1} = phi_k / hh - 1/k!; R = [[1, 1], [rk, 1]] (powers of rks = [rk, 1]).
    at::Tensor h_phi_k = f.h_phi_1 / hh - 1;
    const at::Tensor b1 = h_phi_k * 1 / b_h;
    h_phi_k = h_phi_k / hh - 0.5;
    const at::Tensor b2 = h_phi_k * 2 / b_h;
    const at::Tensor rks = at::stack({rk, at::ones_like(rk)});
    const at::Tensor r = at::stack({at::ones_like(rks), rks});
    const at::Tensor rhos = at::linalg_solve(r, at::stack({b1, b2})).to(x.scalar_type());
    return x_t - alpha_t * b_h * (rhos[0] * d1 + rhos[1] * d1_t);
  }

  at::Tensor x0_older_, x0_newest_;  // the two latest data predictions
  at::Tensor last_sample_;           // the (corrected) sample the last prediction started from
  int lower_order_nums_ = 0;
  int this_order_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_unipc_scheduler(int num_train_timesteps) {
  return std::make_unique<UniPCScheduler>(num_train_timesteps);
}

}  // namespace wanrt::wan22
