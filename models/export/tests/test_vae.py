"""Tests of the Wan 2.1 / 2.2 VAEs (wanrt_export.vae*): official names, stepped decode,
causality of the explicit cache (against independent whole-sequence formulas), shapes,
patchify channel order, TorchScript."""
import copy
import io

import pytest
import torch
import torch.nn.functional as F

from conftest import load_tsv
from wanrt_export.configs import get_config
from wanrt_export.vae import build_vae, keep_fp32_patterns
from wanrt_export.vae21 import WanVAE21
from wanrt_export.vae22 import AvgDown3D, DupUp3D, WanVAE22
from wanrt_export.vae_common import (AttentionBlock, CacheRegistry, CausalConv3d, Resample,
                                    patchify, unpatchify)

TINY = {"2.1": "tiny-t2v-moe", "2.2": "tiny-ti2v"}
REAL = {"2.1": ("t2v-a14b", "vae_wan2_1.tsv", WanVAE21),
        "2.2": ("ti2v-5b", "vae_wan2_2.tsv", WanVAE22)}
PIXELS = {"2.1": 32, "2.2": 64}
VERSIONS = ["2.1", "2.2"]


def _randomize(module, seed):
    """Re-initialise every parameter randomly (gammas around 1, small biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(noise * (1.2 / p[0].numel() ** 0.5))
    return module


_MODELS = {}


def _tiny_model(version):
    if version not in _MODELS:
        torch.manual_seed(0)
        _MODELS[version] = _randomize(build_vae(get_config(TINY[version]).vae), 1234).eval()
    return _MODELS[version]


def _latent(version, t, seed=7):
    m = _tiny_model(version)
    s = PIXELS[version] // m.stride_s
    return torch.randn(1, m.z_dim, t, s, s, generator=torch.Generator().manual_seed(seed))


def _video(version, f, seed=3):
    p = PIXELS[version]
    return torch.rand(1, 3, f, p, p, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# 1. official parameter names and shapes ---------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_real_state_dict_matches_official(version):
    name, tsv, cls = REAL[version]
    cfg = get_config(name).vae
    model = build_vae(cfg, device="meta")
    assert isinstance(model, cls)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    ref = load_tsv(tsv)
    assert len(ours) == len(ref)
    assert set(ours) == set(ref)
    assert all(v.device.type == "meta" for v in model.state_dict().values())
    # latent statistics are buffers outside the state dict
    buffers = dict(model.named_buffers())
    assert buffers["mean"].shape == (cfg.z_dim,) and buffers["std"].shape == (cfg.z_dim,)
    assert "mean" not in model.state_dict() and "std" not in model.state_dict()


def test_build_vae_dispatch_and_fp32_patterns():
    cfg = get_config("tiny-t2v-moe").vae
    assert isinstance(build_vae(cfg), WanVAE21)
    assert isinstance(build_vae(get_config("tiny-ti2v").vae), WanVAE22)
    cfg.version = "9.9"
    with pytest.raises(ValueError):
        build_vae(cfg)
    pats = keep_fp32_patterns()
    assert isinstance(pats, list) and all(isinstance(p, str) for p in pats)


# 2. decode == concatenated decode_step, cache protocol ------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_decode_equals_decode_steps(version):
    m = _tiny_model(version)
    z = _latent(version, 3)
    with torch.no_grad():
        full = m.decode(z)
        cache = m.init_decode_cache(z)
        init_shapes = [tuple(c.shape) for c in cache]
        assert all(float(c.abs().sum()) == 0.0 for c in cache)
        frames = []
        for t in range(3):
            before = list(cache)
            y, cache = m.decode_step(z[:, :, t:t + 1], cache)
            assert all(a is b for a, b in zip(before, before))  # caller's list untouched
            assert [tuple(c.shape) for c in cache] == init_shapes
            assert int(cache[-1]) == t + 1
            assert y.shape[2] == (1 if t == 0 else 4)
            frames.append(y)
    assert full.shape[2] == 9
    assert torch.equal(torch.cat(frames, 2), full)
    # non-trivial output: not constant, not saturated everywhere
    assert float(full.std()) > 0.1
    assert float((full.abs() < 1).float().mean()) > 0.5


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_step_does_not_mutate_callers_cache(version):
    m = _tiny_model(version)
    z = _latent(version, 2)
    with torch.no_grad():
        cache = m.init_decode_cache(z)
        _, c1 = m.decode_step(z[:, :, :1], cache)
        snapshot = [c.clone() for c in c1]
        ids = [id(c) for c in c1]
        y_a, _ = m.decode_step(z[:, :, 1:2], c1)
        y_b, _ = m.decode_step(z[:, :, 1:2], c1)
    assert [id(c) for c in c1] == ids
    assert all(torch.equal(a, b) for a, b in zip(c1, snapshot))
    assert torch.equal(y_a, y_b)


@pytest.mark.parametrize("version", VERSIONS)
def test_cache_carries_history(version):
    """Step 2 with the real cache differs from step 2 with a zeroed history."""
    m = _tiny_model(version)
    z = _latent(version, 2)
    with torch.no_grad():
        _, c1 = m.decode_step(z[:, :, :1], m.init_decode_cache(z))
        y_real, _ = m.decode_step(z[:, :, 1:2], c1)
        blank = [torch.zeros_like(c) for c in c1[:-1]] + [c1[-1]]
        y_blank, _ = m.decode_step(z[:, :, 1:2], blank)
    assert y_real.shape == y_blank.shape
    assert float((y_real - y_blank).abs().max()) > 1e-3


# 3. causality: prefixes, and cached layers against whole-sequence formulas ---------------

@pytest.mark.parametrize("version", VERSIONS)
def test_decode_and_encode_are_causal(version):
    m = _tiny_model(version)
    z = _latent(version, 3)
    v = _video(version, 9)
    with torch.no_grad():
        torch.testing.assert_close(m.decode(z[:, :, :2]), m.decode(z)[:, :, :5], atol=1e-6, rtol=0)
        torch.testing.assert_close(m.encode(v[:, :, :5]), m.encode(v)[:, :, :2], atol=1e-6, rtol=0)
        # and the later latents do depend on the later frames
        v2 = v.clone()
        v2[:, :, 5:] = -v2[:, :, 5:]
        assert float((m.encode(v2)[:, :, 2] - m.encode(v)[:, :, 2]).abs().max()) > 1e-4


def _stream(layer, x, sizes, cache):
    """Feed x to a cached layer in temporal chunks of the given sizes; concatenate."""
    outs, t0 = [], 0
    for i, n in enumerate(sizes):
        chunk = x[:, :, t0:t0 + n]
        if isinstance(layer, Resample):
            outs.append(layer(chunk, cache, i == 0))
        else:
            outs.append(layer(chunk, cache))
        t0 += n
    return torch.cat(outs, 2)


@pytest.mark.parametrize("sizes", [[1, 4, 4], [1, 1, 1, 1, 1], [2, 3, 4]])
def test_causal_conv_stream_equals_zero_padded_full_conv(sizes):
    torch.manual_seed(0)
    reg = CacheRegistry()
    conv = CausalConv3d(3, 5, 3, padding=1, reg=reg)
    x = torch.randn(1, 3, sum(sizes), 6, 7)
    cache = [torch.zeros(1, 3, 2, 6, 7)]
    with torch.no_grad():
        got = _stream(conv, x, sizes, cache)
        ref = F.conv3d(F.pad(x, (1, 1, 1, 1, 2, 0)), conv.weight, conv.bias)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    assert reg.specs == [[3, 2, 1, 1]]


def _spatial_up(x, conv2d):
    frames = [F.conv2d(F.interpolate(x[:, :, i], scale_factor=2.0, mode="nearest"),
                       conv2d.weight, conv2d.bias, padding=1) for i in range(x.shape[2])]
    return torch.stack(frames, 2)


@pytest.mark.parametrize("sizes", [[1, 1, 1, 1], [1, 2, 2]])
def test_temporal_upsample_matches_official_rep_rule(sizes):
    """First chunk: no temporal upsample. Later chunks: time conv over the stream *without*
    frame 0 ('Rep' = two zero frames before chunk 2), halves interleaved as frames."""
    torch.manual_seed(0)
    c = 4
    reg = CacheRegistry()
    layer = _randomize(Resample(c, c // 2, up=True, temporal=True, reg=reg, scale=(1, 1)), 5)
    x = torch.randn(1, c, sum(sizes), 3, 3)
    cache = [torch.zeros(1, c, 2, 3, 3)]
    with torch.no_grad():
        got = _stream(layer, x, sizes, cache)
        tc = layer.time_conv
        rest = F.conv3d(F.pad(x[:, :, sizes[0]:], (0, 0, 0, 0, 2, 0)), tc.weight, tc.bias)
        seq = [x[:, :, i] for i in range(sizes[0])]
        for i in range(rest.shape[2]):
            seq += [rest[:, :c, i], rest[:, c:, i]]
        ref = _spatial_up(torch.stack(seq, 2), layer.resample[1])
    assert got.shape[2] == sizes[0] + 2 * (sum(sizes) - sizes[0])
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-6)


def test_temporal_downsample_matches_full_sequence():
    """First chunk passes through; then a stride-2 time conv over the whole sequence."""
    torch.manual_seed(0)
    c, sizes = 4, [1, 4, 4]
    reg = CacheRegistry()
    layer = _randomize(Resample(c, c, up=False, temporal=True, reg=reg, scale=(1, 1)), 6)
    x = torch.randn(1, c, sum(sizes), 8, 8)
    cache = [torch.zeros(1, c, 1, 4, 4)]
    with torch.no_grad():
        got = _stream(layer, x, sizes, cache)
        conv = layer.resample[1]
        s = torch.stack([F.conv2d(F.pad(x[:, :, i], (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
                         for i in range(x.shape[2])], 2)
        tc = layer.time_conv
        ref = torch.cat([s[:, :, :1], F.conv3d(s, tc.weight, tc.bias, stride=(2, 1, 1))], 2)
    assert reg.specs == [[c, 1, 1, 2]]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-6)


def test_avg_down_and_dup_up_per_element():
    torch.manual_seed(0)
    ci, co, ft, fs = 4, 8, 2, 2
    x = torch.randn(1, ci, 3, 4, 4)  # 3 frames: one zero frame is padded in front
    got = AvgDown3D(ci, co, ft, fs)(x)
    xp = torch.cat([torch.zeros(1, ci, 1, 4, 4), x], 2)
    group = ci * ft * fs * fs // co
    ref = torch.zeros(1, co, 2, 2, 2)
    for o in range(co):
        for t in range(2):
            for h in range(2):
                for w in range(2):
                    acc = 0.0
                    for g in range(group):
                        flat = o * group + g
                        cc, rem = divmod(flat, ft * fs * fs)
                        i, rem = divmod(rem, fs * fs)
                        j, k = divmod(rem, fs)
                        acc += float(xp[0, cc, t * ft + i, h * fs + j, w * fs + k])
                    ref[0, o, t, h, w] = acc / group
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)

    ci, co = 8, 4
    y = torch.randn(1, ci, 2, 2, 3)
    up = DupUp3D(ci, co, ft, fs)
    got = up(y, False)
    rep = co * ft * fs * fs // ci
    ref = torch.zeros(1, co, 4, 4, 6)
    for o in range(co):
        for i in range(ft):
            for j in range(fs):
                for k in range(fs):
                    src = (((o * ft + i) * fs + j) * fs + k) // rep
                    ref[0, o, i::ft, j::fs, k::fs] = y[0, src]
    assert torch.equal(got, ref)
    assert torch.equal(up(y, True), ref[:, :, ft - 1:])


# 4. shapes / strides / range ---------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_encode_decode_shapes(version):
    m = _tiny_model(version)
    p, s = PIXELS[version], m.stride_s
    assert (m.stride_t, s) == ((4, 8) if version == "2.1" else (4, 16))
    with torch.no_grad():
        zz = m.encode(_video(version, 9))
        assert zz.shape == (1, m.z_dim, 3, p // s, p // s)
        y = m.decode(zz)
        assert y.shape == (1, 3, 9, p, p)
        assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0
        img = m.encode(_video(version, 1))
        assert img.shape == (1, m.z_dim, 1, p // s, p // s)
        assert m.decode(img).shape == (1, 3, 1, p, p)
        with pytest.raises(Exception):
            m.encode(_video(version, 4))


@pytest.mark.parametrize("version", VERSIONS)
def test_latent_normalisation(version):
    """encode returns (mu - mean) / std and decode takes z * std + mean back, checked
    against a copy of the model whose statistics are the identity."""
    m = _tiny_model(version)
    cfg = get_config(TINY[version]).vae
    assert torch.equal(m.mean, torch.tensor(cfg.mean))
    assert torch.equal(m.std, torch.tensor(cfg.std))
    raw = copy.deepcopy(m)
    raw.mean.zero_()
    raw.std.fill_(1.0)
    raw.inv_std.fill_(1.0)
    mean, std = m.mean.view(1, -1, 1, 1, 1), m.std.view(1, -1, 1, 1, 1)
    v, z = _video(version, 5), _latent(version, 2)
    with torch.no_grad():
        torch.testing.assert_close(m.encode(v), (raw.encode(v) - mean) / std, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m.decode(z), raw.decode(z * std + mean), atol=1e-5, rtol=1e-5)


def test_attention_block_matches_explicit_formula():
    torch.manual_seed(0)
    b, c, t, h, w = 2, 6, 3, 4, 5
    blk = _randomize(AttentionBlock(c), 9)
    x = torch.randn(b, c, t, h, w)
    with torch.no_grad():
        got = blk(x)
        gamma = blk.norm.gamma.view(1, c, 1, 1, 1)
        xn = x / x.pow(2).sum(1, keepdim=True).sqrt() * c ** 0.5 * gamma
        qkv = torch.einsum("oc,bcthw->bothw", blk.to_qkv.weight[:, :, 0, 0], xn)
        qkv = qkv + blk.to_qkv.bias.view(1, -1, 1, 1, 1)
        q, k, v = (qkv[:, i * c:(i + 1) * c].permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c)
                   for i in range(3))
        att = torch.softmax(q @ k.transpose(-1, -2) / c ** 0.5, dim=-1) @ v  # per frame
        att = att.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        out = torch.einsum("oc,bcthw->bothw", blk.proj.weight[:, :, 0, 0], att)
        ref = out + blk.proj.bias.view(1, -1, 1, 1, 1) + x
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


# 5. patchify ------------------------------------------------------------------------------

def test_patchify_round_trip_and_channel_order():
    x = torch.randn(2, 3, 2, 6, 8)
    y = patchify(x, 2)
    assert y.shape == (2, 12, 2, 3, 4)
    assert torch.equal(unpatchify(y, 2), x)
    # "b c f (h q) (w r) -> b (c r q) f h w"
    ref = torch.empty_like(y)
    for c in range(3):
        for r in range(2):
            for q in range(2):
                for h in range(3):
                    for w in range(4):
                        ref[:, c * 4 + r * 2 + q, :, h, w] = x[:, c, :, h * 2 + q, w * 2 + r]
    assert torch.equal(y, ref)
    assert patchify(x, 1) is x and unpatchify(x, 1) is x


# 6. TorchScript -----------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_scripted_matches_eager_and_round_trips(version):
    m = _tiny_model(version)
    sm = torch.jit.script(m)
    z = _latent(version, 2)
    v = _video(version, 5)
    with torch.no_grad():
        torch.testing.assert_close(sm.encode(v), m.encode(v), atol=1e-5, rtol=0)
        torch.testing.assert_close(sm.decode(z), m.decode(z), atol=1e-5, rtol=0)
        torch.testing.assert_close(sm(z), m(z), atol=1e-5, rtol=0)
        ce, cs = m.init_decode_cache(z), sm.init_decode_cache(z)
        assert [c.shape for c in ce] == [c.shape for c in cs]
        for t in range(2):
            ye, ce = m.decode_step(z[:, :, t:t + 1], ce)
            ys, cs = sm.decode_step(z[:, :, t:t + 1], cs)
            torch.testing.assert_close(ys, ye, atol=1e-5, rtol=0)
        buf = io.BytesIO()
        torch.jit.save(sm, buf)
        buf.seek(0)
        lm = torch.jit.load(buf)
        assert torch.equal(lm.decode(z), sm.decode(z))
        assert torch.equal(lm.encode(v), sm.encode(v))
    # TorchScript (1.13) lists non-persistent buffers in state_dict; parameters are the same
    assert set(lm.state_dict()) - set(m.state_dict()) <= {"mean", "std", "inv_std"}
    assert set(dict(lm.named_parameters())) == set(dict(m.named_parameters()))
