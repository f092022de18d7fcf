"""Flow-matching samplers used by Wan 2.2: UniPC (the official default), plain Euler, and
"lightning" (Euler on the schedule of the 4-step distilled models, at the end of this text).

Model output convention: the DiT predicts the flow velocity ``v`` of the straight path
``x(sigma) = (1 - sigma) * x0 + sigma * noise``; the data prediction is
``x0 = sample - sigma * v``.

Schedule (identical for both samplers; mirrors Wan's FlowUniPCMultistepScheduler built at
shift 1 and then ``set_timesteps(steps, shift)``):

* ``sigma_max = float32(1 - 1/num_train_timesteps)`` (0.9990000128746033 for 1000),
  ``sigma_min = 0``.
* ``s_i = sigma_max + i * ((sigma_min - sigma_max) / steps)`` for ``i < steps`` in float64
  (numpy's linspace formula: ``i * step + start``; the endpoint is dropped).
* ``s_i = shift * s_i / (1 + (shift - 1) * s_i)`` in float64.
* ``timesteps[i] = int64(trunc(s_i * num_train_timesteps))`` (from the float64 values).
* ``sigmas = float32([s_0 .. s_{steps-1}, 0])``.

UniPC step (solver_order 2, data prediction, B(h) = expm1(h) ("bh2"), lower order on the
final step, corrector on every step but the first). All scalar coefficients are float32
0-d tensors computed in the same order as the official code, so results agree bit for bit
in principle. ``lambda(sigma) = log(1 - sigma) - log(sigma)``; ``h = lambda_t - lambda_s0``.

One known divergence: the official scheduler locates its first step by searching the
integer timesteps and starts at index 1 when ``timesteps[0] == timesteps[1]`` (possible
only with steps * shift of roughly 1000 or more); here the caller passes the index.

Lightning (Wan2.2-Lightning / LightX2V few-step sampling), N = num_train_timesteps:

* ``t = numpy.linspace(N, 0, steps + 1, dtype=float32)`` (numpy computes ``i * (-N/steps) + N``
  in float64, sets the last value to exactly 0, then rounds to float32);
* ``sigma = t / N`` in float32;
* ``sigma' = (shift * sigma) / (1 + (shift - 1) * sigma)``, each operation in float32 with the
  scalars ``float32(shift)`` and ``float32(shift - 1)``; ``sigmas = sigma'`` (float32
  [steps + 1], the last one 0);
* ``timesteps = sigma'[:steps] * N`` in float32, NOT truncated: a float32 tensor (the other
  samplers' timesteps are int64). 4 steps at shift 5: 1000, 937.5, 833.3333, 625.
* step: Euler, ``x_{i+1} = float32(x_i) + (sigma_{i+1} - sigma_i) * v``.
"""
from typing import List, Optional

import numpy as np
import torch
from torch import Tensor


def _shifted_sigmas(steps: int, shift: float, num_train_timesteps: int) -> List[float]:
    """The float64 shifted sigmas s_0..s_{steps-1} (without the final zero)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    # The official training schedule is float64 then cast to float32; its ends are exact.
    sigma_max = float(torch.tensor(1.0 - 1.0 / num_train_timesteps, dtype=torch.float32))
    sigma_min = 0.0
    delta = (sigma_min - sigma_max) / steps
    out = []
    for i in range(steps):
        s = float(i) * delta + sigma_max
        out.append(shift * s / (1.0 + (shift - 1.0) * s))
    return out


class _FlowSchedulerBase:
    """Shared schedule construction; subclasses implement ``step``."""

    def __init__(self, num_train_timesteps: int = 1000):
        self.num_train_timesteps = int(num_train_timesteps)
        self.timesteps = torch.zeros(0, dtype=torch.int64)
        self.sigmas = torch.zeros(0, dtype=torch.float32)

    def set_timesteps(self, steps: int, shift: float) -> None:
        """Build ``timesteps`` (int64 [steps]) and ``sigmas`` (float32 [steps+1], last 0)."""
        s = _shifted_sigmas(int(steps), float(shift), self.num_train_timesteps)
        s64 = torch.tensor(s, dtype=torch.float64)
        self.timesteps = (s64 * self.num_train_timesteps).to(torch.int64)
        self.sigmas = torch.tensor(s + [0.0], dtype=torch.float64).to(torch.float32)
        self._reset()

    @property
    def num_steps(self) -> int:
        return int(self.timesteps.numel())

    def _reset(self) -> None:
        self._next_index = 0

    def _check_index(self, timestep_index: int) -> int:
        i = int(timestep_index)
        if self.num_steps == 0:
            raise RuntimeError("call set_timesteps() before step()")
        if i == 0:
            self._reset()
        if i != self._next_index or i >= self.num_steps:
            raise ValueError(f"step index {i} out of order (expected {self._next_index} "
                             f"of {self.num_steps})")
        self._next_index = i + 1
        return i


class FlowEulerScheduler(_FlowSchedulerBase):
    """First-order flow Euler: ``x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v``."""

    def step(self, model_output: Tensor, timestep_index: int, sample: Tensor) -> Tensor:
        """Advance ``sample`` from sigma_i to sigma_{i+1} given the velocity."""
        i = self._check_index(timestep_index)
        dt = self.sigmas[i + 1] - self.sigmas[i]
        return sample + dt * model_output


def _lam(sigma: Tensor) -> Tensor:
    """Half log-SNR of the flow path: log(alpha) - log(sigma), alpha = 1 - sigma."""
    alpha = 1 - sigma
    return torch.log(alpha) - torch.log(sigma)


def _first_order(x: Tensor, m0: Tensor, sigma_s0: Tensor, sigma_t: Tensor):
    """The first-order part shared by UniP and UniC, from sigma_s0 to sigma_t with the data
    prediction m0: (alpha_t, lambda_s0, h, hh, h_phi_1, x_t). In the bh2 variant
    B(h) = h * phi_1(hh) = expm1(hh), so h_phi_1 is also b_h."""
    alpha_t = 1 - sigma_t
    lambda_s0 = _lam(sigma_s0)
    h = _lam(sigma_t) - lambda_s0
    hh = -h
    h_phi_1 = torch.expm1(hh)
    x_t = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
    return alpha_t, lambda_s0, h, hh, h_phi_1, x_t


class FlowUniPCScheduler(_FlowSchedulerBase):
    """UniPC-2 (bh2, data prediction) for flow velocity models, as used by Wan 2.2."""

    solver_order = 2

    def _reset(self) -> None:
        super()._reset()
        self._x0_preds: List[Optional[Tensor]] = [None, None]   # [older, newest]
        self._last_sample: Optional[Tensor] = None
        self._lower_order_nums = 0
        self._this_order = 0

    def step(self, model_output: Tensor, timestep_index: int, sample: Tensor) -> Tensor:
        """One UniC correction (from the second step on) then one UniP prediction.

        Returns the predicted sample at sigma_{i+1}; the corrected sample at sigma_i is
        kept internally, as in the official scheduler.
        """
        i = self._check_index(timestep_index)
        x0_pred = sample - self.sigmas[i] * model_output
        if i > 0 and self._last_sample is not None:
            sample = self._correct(x0_pred, i, self._this_order)

        self._x0_preds = [self._x0_preds[1], x0_pred]
        order = min(self.solver_order, self.num_steps - i)       # lower_order_final
        order = min(order, self._lower_order_nums + 1)           # multistep warm-up
        self._this_order = order
        self._last_sample = sample
        prev = self._predict(sample, i, order)
        if self._lower_order_nums < self.solver_order:
            self._lower_order_nums += 1
        return prev

    def _predict(self, x: Tensor, i: int, order: int) -> Tensor:
        """UniP from sigma_i to sigma_{i+1}."""
        m0 = self._x0_preds[1]
        assert m0 is not None
        alpha_t, lambda_s0, h, _, b_h, x_t = _first_order(x, m0, self.sigmas[i], self.sigmas[i + 1])
        if order == 2:
            m1 = self._x0_preds[0]
            assert m1 is not None
            rk = (_lam(self.sigmas[i - 1]) - lambda_s0) / h
            d1 = (m1 - m0) / rk
            # Order-2 UniP uses the fixed rho = 0.5 (the official "simplified version").
            x_t = x_t - alpha_t * b_h * (torch.tensor(0.5, dtype=x.dtype) * d1)
        return x_t

    def _correct(self, model_t: Tensor, i: int, order: int) -> Tensor:
        """UniC: recompute the step sigma_{i-1} -> sigma_i using the new x0 prediction."""
        x = self._last_sample
        m0 = self._x0_preds[1]
        assert x is not None and m0 is not None
        alpha_t, lambda_s0, h, hh, h_phi_1, x_t = _first_order(x, m0, self.sigmas[i - 1],
                                                                self.sigmas[i])
        b_h = h_phi_1
        d1_t = model_t - m0
        if order == 1:
            rho_t = torch.tensor(0.5, dtype=x.dtype)
            return x_t - alpha_t * b_h * (rho_t * d1_t)
        m1 = self._x0_preds[0]
        assert m1 is not None
        rk = (_lam(self.sigmas[i - 2]) - lambda_s0) / h
        d1 = (m1 - m0) / rk
        # b_k = (k-1)! * h*phi_k(hh) / B(h), with h*phi_1 = expm1(hh) and the recursion
        # phi_{k+1} = phi_k / hh - 1/k!; R = [[1, 1], [rk, 1]] (powers of rks = [rk, 1]).
        h_phi_k = h_phi_1 / hh - 1
        b1 = h_phi_k * 1 / b_h
        h_phi_k = h_phi_k / hh - 1 / 2
        b2 = h_phi_k * 2 / b_h
        rks = torch.stack([rk, torch.ones_like(rk)])
        r = torch.stack([torch.ones_like(rks), rks])
        rhos = torch.linalg.solve(r, torch.stack([b1, b2])).to(x.dtype)
        return x_t - alpha_t * b_h * (rhos[0] * d1 + rhos[1] * d1_t)


def lightning_sigmas(steps: int, shift: float, num_train_timesteps: int = 1000) -> Tensor:
    """The float32 shifted sigmas [steps + 1] of the lightning schedule (module docstring)."""
    steps, shift, n = int(steps), float(shift), int(num_train_timesteps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    t = torch.from_numpy(np.linspace(n, 0, steps + 1, dtype=np.float32).copy())
    sigma = t / torch.tensor(float(n), dtype=torch.float32)
    shift_f = torch.tensor(shift, dtype=torch.float32)
    shift_m1 = torch.tensor(shift - 1.0, dtype=torch.float32)
    return (shift_f * sigma) / (1.0 + shift_m1 * sigma)


class FlowLightningScheduler(FlowEulerScheduler):
    """Euler on the few-step distilled schedule; float32 (untruncated) timesteps."""

    def set_timesteps(self, steps: int, shift: float) -> None:
        """Build ``timesteps`` (float32 [steps]) and ``sigmas`` (float32 [steps+1], last 0)."""
        sigmas = lightning_sigmas(steps, shift, self.num_train_timesteps)
        n = torch.tensor(float(self.num_train_timesteps), dtype=torch.float32)
        self.timesteps = sigmas[:-1] * n
        self.sigmas = sigmas
        self._reset()

    def step(self, model_output: Tensor, timestep_index: int, sample: Tensor) -> Tensor:
        """Advance ``sample`` (promoted to float32) from sigma_i to sigma_{i+1}."""
        i = self._check_index(timestep_index)
        dt = self.sigmas[i + 1] - self.sigmas[i]
        return sample.float() + dt * model_output


SAMPLERS = ("unipc", "euler", "lightning")


def make_scheduler(name: str, num_train_timesteps: int = 1000):
    """Scheduler by name: "unipc" (Wan's default), "euler" or "lightning"."""
    if name == "unipc":
        return FlowUniPCScheduler(num_train_timesteps)
    if name == "euler":
        return FlowEulerScheduler(num_train_timesteps)
    if name == "lightning":
        return FlowLightningScheduler(num_train_timesteps)
    raise ValueError(f"unknown sampler '{name}'; known: {', '.join(SAMPLERS)}")
