"""Flow UniPC / Euler schedulers against published values and hand-written references."""
import math

import numpy as np
import pytest
import torch

from wanrt_export.scheduler import (FlowEulerScheduler, FlowLightningScheduler, FlowUniPCScheduler,
                                    make_scheduler)


# ----------------------------------------------------------------------------- schedule

def test_t2v_a14b_timesteps_match_published_values():
    # docs/wan22.md section 4: 40 steps, shift 12.
    s = FlowUniPCScheduler()
    s.set_timesteps(40, 12.0)
    t = s.timesteps.tolist()
    assert s.timesteps.dtype == torch.int64 and len(t) == 40
    assert t[:5] == [999, 997, 995, 993, 990]
    assert t[-5:] == [631, 571, 492, 386, 235]
    assert sum(1 for v in t if v >= 875) == 26          # high-noise expert steps


def test_i2v_a14b_boundary_count():
    s = FlowUniPCScheduler()
    s.set_timesteps(40, 5.0)
    assert sum(1 for v in s.timesteps.tolist() if v >= 900) == 15


def _numpy_schedule(steps, shift, n=1000):
    """The official construction, written with numpy as Wan does it."""
    train = 1.0 - np.linspace(1, 1 / n, n)[::-1].copy()
    train = torch.from_numpy(train).to(torch.float32)
    sig = np.linspace(train[0].item(), train[-1].item(), steps + 1).copy()[:-1]
    sig = shift * sig / (1 + (shift - 1) * sig)
    ts = torch.from_numpy(sig * n).to(torch.int64)
    sg = torch.from_numpy(np.concatenate([sig, [0.0]]).astype(np.float32))
    return ts, sg


@pytest.mark.parametrize("steps,shift", [(40, 12.0), (40, 5.0), (50, 5.0), (4, 5.0), (7, 3.0), (1, 1.0)])
def test_schedule_bitwise_equal_to_numpy_construction(steps, shift):
    ts, sg = _numpy_schedule(steps, shift)
    for s in (FlowUniPCScheduler(), FlowEulerScheduler()):
        s.set_timesteps(steps, shift)
        assert torch.equal(s.timesteps, ts)
        assert s.sigmas.dtype == torch.float32 and torch.equal(s.sigmas, sg)
        assert s.sigmas.shape == (steps + 1,) and s.sigmas[-1].item() == 0.0


def test_schedule_properties():
    s = FlowEulerScheduler()
    s.set_timesteps(40, 12.0)
    assert bool((s.sigmas[1:] < s.sigmas[:-1]).all())
    assert abs(s.sigmas[0].item() - 12 * 0.999 / (1 + 11 * 0.999)) < 1e-6
    # timesteps are the truncated sigma * 1000 (the sigmas are float32 copies).
    assert bool(((s.sigmas[:-1].double() * 1000 - s.timesteps.double()).abs() < 1).all())


# ----------------------------------------------------------------------------- exact flows

def test_straight_flow_is_integrated_exactly():
    torch.manual_seed(0)
    x0 = torch.randn(3, 2, 4, 4)
    noise = torch.randn(3, 2, 4, 4)
    for name in ("euler", "unipc"):
        s = make_scheduler(name)
        s.set_timesteps(12, 5.0)
        sig0 = s.sigmas[0].item()
        x = (1 - sig0) * x0 + sig0 * noise
        for i in range(12):
            x = s.step(noise - x0, i, x)
        assert (x - x0).abs().max().item() < 1e-6, name


class _GaussianFlow:
    """Exact flow model for data ~ N(mu, sd^2): x(s) = (1-s) mu + std(s) z, known in closed form."""

    def __init__(self, sd=1.0, n=64):
        g = torch.Generator().manual_seed(1)
        self.mu = 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        self.z = torch.randn(n, generator=g, dtype=torch.float64)
        self.sd = sd

    def std(self, s):
        return math.sqrt((1 - s) ** 2 * self.sd ** 2 + s ** 2)

    def x_at(self, s):
        return (1 - s) * self.mu + self.std(s) * self.z

    def velocity(self, x, s):
        s = float(s)
        x0 = self.mu + (1 - s) * self.sd ** 2 / self.std(s) ** 2 * (x - (1 - s) * self.mu)
        return (x - x0) / s


def _final_error(name, steps, flow, shift=1.0):
    s = make_scheduler(name)
    s.set_timesteps(steps, shift)
    x = flow.x_at(s.sigmas[0].item())
    for i in range(steps):
        x = s.step(flow.velocity(x, s.sigmas[i]), i, x)
    return (x - flow.x_at(0.0)).abs().max().item()


def test_unipc_is_second_order_euler_first_order():
    flow = _GaussianFlow()
    steps = [10, 20, 40, 80]
    e_euler = [_final_error("euler", n, flow) for n in steps]
    e_unipc = [_final_error("unipc", n, flow) for n in steps]
    assert e_unipc[0] < e_euler[0] / 5
    for k in range(len(steps) - 1):
        assert 1.7 < e_euler[k] / e_euler[k + 1] < 2.3, e_euler
        assert e_unipc[k] / e_unipc[k + 1] > 3.0, e_unipc


# ----------------------------------------------------------------------------- by hand

def _lam(s):
    return math.inf if s == 0.0 else math.log(1 - s) - math.log(s)


def _hand_unipc(model, x, sigmas):
    """UniPC-2 bh2 written out per step in float64 scalars (independent of the class).

    Predictor from sigma_i to sigma_{i+1} (data prediction, h = lam_{i+1} - lam_i,
    B = expm1(-h)):  x' = (s_{i+1}/s_i) xc_i - (1-s_{i+1}) B x0_i
                          - (1-s_{i+1}) B * 0.5 * (x0_{i-1} - x0_i) / r      (order 2)
    with r = (lam_{i-1} - lam_i) / h. Corrector at step i >= 1 re-does the previous step
    from xc_{i-1} with the new x0_i: order 1 uses rho = 0.5 on (x0_i - x0_{i-1}); order 2
    solves [[1, 1], [r, 1]] rho = [g1, g2] with g1 = (e/hh - 1)/B,
    g2 = 2((e/hh - 1)/hh - 1/2)/B, e = expm1(hh), hh = -h.
    """
    n = len(sigmas) - 1
    outs, x0s, orders = [], [], []
    xc_prev = None
    for i in range(n):
        s_i = sigmas[i]
        v = model(x, i)
        x0 = x - s_i * v
        if i == 0:
            xc = x
        else:
            s_p = sigmas[i - 1]
            h = _lam(s_i) - _lam(s_p)
            b = math.expm1(-h)
            base = (s_i / s_p) * xc_prev - (1 - s_i) * b * x0s[-1]
            if orders[-1] == 1:
                xc = base - (1 - s_i) * b * 0.5 * (x0 - x0s[-1])
            else:
                r = (_lam(sigmas[i - 2]) - _lam(s_p)) / h
                d1 = (x0s[-2] - x0s[-1]) / r
                hh = -h
                e = math.expm1(hh)
                g1 = (e / hh - 1) / b
                g2 = 2 * ((e / hh - 1) / hh - 0.5) / b
                rho0 = (g1 - g2) / (1 - r)
                rho1 = g1 - rho0
                xc = base - (1 - s_i) * b * (rho0 * d1 + rho1 * (x0 - x0s[-1]))
        order = min(2, n - i, i + 1)
        s_n = sigmas[i + 1]
        h = _lam(s_n) - _lam(s_i)
        b = math.expm1(-h)
        x_next = (s_n / s_i) * xc - (1 - s_n) * b * x0
        if order == 2:
            r = (_lam(sigmas[i - 1]) - _lam(s_i)) / h
            x_next = x_next - (1 - s_n) * b * 0.5 * (x0s[-1] - x0) / r
        x0s.append(x0)
        orders.append(order)
        outs.append(x_next)
        xc_prev = xc
        x = x_next
    return outs


def _nonlinear_model(x, i):
    return torch.sin(3 * x) + 0.3 * x * (i + 1) - 0.2


def test_unipc_matches_hand_computation():
    torch.manual_seed(3)
    x_start = torch.randn(2, 3, 5, dtype=torch.float64)
    s = FlowUniPCScheduler()
    s.set_timesteps(4, 5.0)
    sig = [v.item() for v in s.sigmas]
    ref = _hand_unipc(_nonlinear_model, x_start.clone(), sig)

    x = x_start.clone().float()
    for i in range(4):
        x = s.step(_nonlinear_model(x, i), i, x)
        assert torch.allclose(x.double(), ref[i], rtol=1e-5, atol=1e-5), f"step {i}"

    # Without the corrector the second output would differ clearly: the check has teeth.
    s_e = FlowEulerScheduler()
    s_e.set_timesteps(4, 5.0)
    xe = s_e.step(_nonlinear_model(x_start, 0), 0, x_start)
    xe = s_e.step(_nonlinear_model(xe, 1), 1, xe)
    assert (xe - ref[1]).abs().max().item() > 1e-3


def test_first_unipc_step_equals_euler_and_ddim():
    torch.manual_seed(4)
    x = torch.randn(4, 6, dtype=torch.float64)
    v = torch.randn(4, 6, dtype=torch.float64)
    u, e = FlowUniPCScheduler(), FlowEulerScheduler()
    for sch in (u, e):
        sch.set_timesteps(10, 3.0)
    s0, s1 = u.sigmas[0].item(), u.sigmas[1].item()
    x0 = x - s0 * v
    ddim = (1 - s1) * x0 + s1 * (x - (1 - s0) * x0) / s0
    euler = x + (s1 - s0) * v
    assert torch.allclose(u.step(v, 0, x), ddim, atol=1e-6)
    assert torch.allclose(e.step(v, 0, x), euler, atol=1e-12)
    assert torch.allclose(ddim, euler, atol=1e-6)


def test_euler_by_hand():
    s = FlowEulerScheduler()
    s.set_timesteps(3, 2.0)
    sig = [v.item() for v in s.sigmas]
    x = torch.tensor([1.0, -2.0])
    ref = x.double().clone()
    for i in range(3):
        v = torch.tensor([0.5 * (i + 1), -1.0])
        x = s.step(v, i, x)
        ref = ref + (sig[i + 1] - sig[i]) * v.double()
    assert torch.allclose(x.double(), ref, atol=1e-6)


# ----------------------------------------------------------------------------- API

def test_state_resets_and_order_is_enforced():
    s = FlowUniPCScheduler()
    s.set_timesteps(5, 5.0)
    x = torch.ones(3)
    with pytest.raises(ValueError):
        s.step(torch.zeros(3), 1, x)

    def run():
        y = x.clone()
        for i in range(5):
            y = s.step(torch.sin(y) + i, i, y)
        return y

    assert torch.equal(run(), run())   # index 0 restarts the multistep state
    with pytest.raises(ValueError):
        s.step(torch.zeros(3), 5, x)


def test_make_scheduler():
    assert isinstance(make_scheduler("unipc"), FlowUniPCScheduler)
    assert isinstance(make_scheduler("euler", 1000), FlowEulerScheduler)
    assert isinstance(make_scheduler("lightning"), FlowLightningScheduler)
    with pytest.raises(ValueError):
        make_scheduler("dpm++")
    with pytest.raises(RuntimeError):
        FlowEulerScheduler().step(torch.zeros(1), 0, torch.zeros(1))


# ----------------------------------------------------------------------------- lightning

def _numpy_lightning(steps, shift, n=1000):
    """Independent construction with numpy float32 scalars, one operation at a time."""
    f = np.float32
    t = np.linspace(n, 0, steps + 1, dtype=np.float32)
    sig = [f(v) / f(n) for v in t]
    shifted = [(f(shift) * s) / (f(1) + f(shift - 1.0) * s) for s in sig]
    return (np.array([s * f(n) for s in shifted[:-1]], dtype=np.float32),
            np.array(shifted, dtype=np.float32))


def test_lightning_hand_values_four_steps_shift_5():
    s = make_scheduler("lightning")
    s.set_timesteps(4, 5.0)
    assert s.timesteps.dtype == torch.float32 and s.sigmas.dtype == torch.float32
    # sigma = 1, .75, .5, .25, 0 -> 5s / (1 + 4s) = 1, 15/16, 5/6, 5/8, 0
    assert s.timesteps[0].item() == 1000.0 and s.timesteps[1].item() == 937.5
    assert s.timesteps[3].item() == 625.0
    assert s.timesteps[2].item() == float(np.float32(5000.0 / 6.0))   # 833.3333129882812
    assert s.sigmas.tolist()[:2] == [1.0, 0.9375] and s.sigmas[-1].item() == 0.0


@pytest.mark.parametrize("steps,shift", [(4, 5.0), (4, 1.0), (8, 5.0), (6, 3.0), (1, 5.0), (7, 12.0),
                                         (3, 0.5), (50, 5.0)])
def test_lightning_bitwise_equal_to_numpy_float32(steps, shift):
    ts, sg = _numpy_lightning(steps, shift)
    s = make_scheduler("lightning")
    s.set_timesteps(steps, shift)
    assert torch.equal(s.timesteps, torch.from_numpy(ts))
    assert torch.equal(s.sigmas, torch.from_numpy(sg))
    assert s.sigmas.shape == (steps + 1,) and s.sigmas[-1].item() == 0.0
    assert bool((s.sigmas[1:] < s.sigmas[:-1]).all())


def test_lightning_timesteps_are_not_truncated_and_other_samplers_stay_int():
    s = make_scheduler("lightning")
    s.set_timesteps(4, 5.0)
    assert s.timesteps[2].item() != int(s.timesteps[2].item())
    for name in ("unipc", "euler"):
        o = make_scheduler(name)
        o.set_timesteps(4, 5.0)
        assert o.timesteps.dtype == torch.int64


def test_lightning_euler_step_in_float32():
    s = make_scheduler("lightning")
    s.set_timesteps(4, 5.0)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0)).to(torch.float64)
    v = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    out = x
    sig = s.sigmas
    for i in range(4):
        out = s.step(v, i, out)
        assert out.dtype == torch.float32
    want = x.float()
    for i in range(4):
        want = want + (sig[i + 1] - sig[i]) * v
    assert torch.equal(out, want)
    # A straight flow lands on x0 from sigma 1.
    x0, noise = torch.randn(4), torch.randn(4)
    s.set_timesteps(4, 5.0)
    x = noise.clone()
    for i in range(4):
        x = s.step(noise - x0, i, x)
    assert (x - x0).abs().max().item() < 1e-6


def test_lightning_rejects_bad_arguments():
    s = make_scheduler("lightning")
    with pytest.raises(ValueError):
        s.set_timesteps(0, 5.0)
    with pytest.raises(ValueError):
        s.set_timesteps(4, 0.0)
