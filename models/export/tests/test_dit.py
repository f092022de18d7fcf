"""Tests of the Wan 2.2 DiT: official names/shapes, RoPE, staging, scripting, reference math."""
import fnmatch
import io
import math
import zipfile

import pytest
import torch
import torch.nn.functional as F

from conftest import load_tsv
from wanrt_export import attention as attn
from wanrt_export.attention import attention_math
from wanrt_export.configs import get_config
from wanrt_export.dit import WanModel, keep_fp32_patterns
from wanrt_export.rope import rope_apply, rope_axis_dims, rope_tables

REAL = [("ti2v-5b", "dit_ti2v_5b.tsv", 4_999_787_712),
        ("t2v-a14b", "dit_t2v_a14b_expert.tsv", 14_288_491_584),
        ("i2v-a14b", "dit_i2v_a14b_expert.tsv", 14_288_901_184)]
TINY = ["tiny-ti2v", "tiny-t2v-moe", "tiny-i2v-moe"]
GRID = (3, 4, 6)  # latent F, H, W -> patch grid (3, 2, 3), L = 18


def make_model(name: str, seed: int = 0) -> WanModel:
    """Tiny model with every parameter random and non-trivial (zero-init ones included)."""
    torch.manual_seed(seed)
    m = WanModel(get_config(name).dit).eval()
    with torch.no_grad():
        for key, p in m.named_parameters():
            if key.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif p.dim() >= 2 and not key.endswith("modulation"):
                p.copy_(torch.randn_like(p) / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return m


def make_inputs(m: WanModel, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, m.in_dim, *GRID, generator=g)
    t = torch.tensor([937.0, 250.5][:batch])
    ctx = torch.randn(batch, m.text_len, m.text_dim, generator=g)
    ctx[:, 7:] = 0.0  # padded text rows, as the caller provides them
    return x, t, ctx


def token_count(m: WanModel) -> int:
    return (GRID[0] // m.pt) * (GRID[1] // m.ph) * (GRID[2] // m.pw)


def per_token_t(m: WanModel, t: torch.Tensor) -> torch.Tensor:
    """TI2V-style per-token timesteps: first latent frame t=0, the rest t."""
    tt = t[:, None].repeat(1, token_count(m))
    tt[:, :(GRID[1] // m.ph) * (GRID[2] // m.pw)] = 0.0
    return tt


def staged(m, x, t, ctx):
    state = m.prologue([x, t, ctx])
    for blk in m.blocks:
        state = blk(state)
    return m.epilogue(state)[0]


# ---- 1. names, shapes, parameter counts of the real configurations (meta device) ----------

@pytest.mark.parametrize("name,tsv,count", REAL)
def test_real_state_dict_matches_official(name, tsv, count):
    m = WanModel(get_config(name).dit, device="meta")
    assert all(p.is_meta for p in m.parameters())
    ours = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
    official = load_tsv(tsv)
    assert len(ours) == len(official)
    assert set(ours) == set(official)
    assert sum(p.numel() for p in m.parameters()) == count
    assert not any("freq" in k or "rope" in k for k in m.state_dict())


# ---- 2. RoPE: real cos/sin form == official complex128 form --------------------------------

def rope_complex_reference(x, grid, head_dim):
    """docs/wan22.md section 8: polar tables of 1024 rows per axis, complex128 product, .float()."""
    def rope_params(max_len, dim):
        ang = torch.outer(torch.arange(max_len, dtype=torch.float64),
                          1.0 / torch.pow(10000, torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        return torch.polar(torch.ones_like(ang), ang)

    d = head_dim
    freqs = torch.cat([rope_params(1024, d - 4 * (d // 6)), rope_params(1024, 2 * (d // 6)),
                       rope_params(1024, 2 * (d // 6))], dim=1)
    c = d // 2
    parts = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    f, h, w = grid
    fr = torch.cat([parts[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
                    parts[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
                    parts[2][:w].view(1, 1, w, -1).expand(f, h, w, -1)], dim=-1)
    fr = fr.reshape(f * h * w, 1, -1)
    b, L, n, _ = x.shape
    xc = torch.view_as_complex(x.to(torch.float64).reshape(b, L, n, -1, 2))
    return torch.view_as_real(xc * fr).flatten(3).float()


def test_rope_axis_split():
    assert rope_axis_dims(128) == [44, 42, 42]
    assert rope_axis_dims(32) == [12, 10, 10]


@pytest.mark.parametrize("grid,head_dim,heads", [((3, 4, 5), 32, 2), ((2, 45, 80), 128, 1),
                                                 ((21, 3, 2), 128, 2)])
def test_rope_real_equals_complex(grid, head_dim, heads):
    torch.manual_seed(0)
    L = grid[0] * grid[1] * grid[2]
    x = torch.randn(2, L, heads, head_dim)
    cos, sin = rope_tables(*grid, head_dim, torch.device("cpu"))
    assert cos.dtype == torch.float32 and cos.shape == (L, 1, head_dim // 2)
    ours = rope_apply(x, cos, sin)
    ref = rope_complex_reference(x, grid, head_dim)
    assert torch.allclose(ours, ref, rtol=0, atol=1e-6), (ours - ref).abs().max()
    assert not torch.allclose(ours, x, atol=1e-3)  # it does rotate


def test_rope_tables_not_module_state():
    m = make_model("tiny-ti2v")
    assert all("rope" not in k and "freq" not in k for k in m.state_dict())
    assert all("rope" not in k and "freq" not in k for k, _ in m.named_buffers())


# ---- attention helper ------------------------------------------------------------------------

def test_attention_matches_naive_and_chunks():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    naive = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
    assert torch.allclose(attention_math(q, k, v), naive, atol=1e-6)
    # 3 queries per chunk: 10 queries split 3/3/3/1
    assert torch.allclose(attention_math(q, k, v, 2 * 3 * 7 * 3), naive, atol=1e-6)
    if attn.HAS_SDPA:
        assert torch.allclose(attn.attention_sdpa(q, k, v), naive, atol=1e-6)


def test_attention_mode_errors():
    with pytest.raises(ValueError, match="unknown attention 'flash'"):
        attn.set_mode("flash")
    if not attn.HAS_SDPA:
        with pytest.raises(ValueError, match="needs PyTorch >= 2.1"):
            attn.set_mode("sdpa")
    assert attn.mode() == attn.default_mode()


@pytest.mark.skipif(not attn.HAS_SDPA, reason="needs PyTorch >= 2.1 (SDPA with scale=)")
def test_sdpa_model_matches_math_model():
    """The same weights under both attentions agree to fp32 rounding (the gap the frames of an
    SDPA and a math bundle show comes from this, amplified by sampling and the VAE)."""
    with attn.use("math"):
        a = make_model("tiny-ti2v")
    with attn.use("sdpa"):
        b = WanModel(get_config("tiny-ti2v").dit).eval()
    b.load_state_dict(a.state_dict())
    x, t, ctx = make_inputs(a)
    with torch.no_grad():
        ya, yb = a(x, t, ctx), b(x, t, ctx)
    assert (ya - yb).abs().max() / ya.abs().max() < 1e-5


@pytest.mark.parametrize("order", [("math", "sdpa", "math"), ("sdpa", "math")])
def test_scripted_file_holds_only_its_attention(order):
    """Each mode scripts only its own implementation, whatever was scripted before it in the
    same process (TorchScript caches compiled methods per module type)."""
    cfg = get_config("tiny-ti2v")
    for mode in order:
        if mode == "sdpa" and not attn.HAS_SDPA:
            continue
        with attn.use(mode):
            m = WanModel(cfg.dit)
        buf = io.BytesIO()
        torch.jit.save(torch.jit.script(m), buf)
        with zipfile.ZipFile(buf) as z:
            code = "\n".join(z.read(n).decode() for n in z.namelist() if n.endswith(".py"))
        assert "softmax" in code or "scaled_dot_product_attention" in code
        assert ("scaled_dot_product_attention" in code) == (mode == "sdpa"), mode


# ---- 3. staged == monolithic, exactly -------------------------------------------------------

@pytest.mark.parametrize("name", TINY)
def test_staged_equals_forward_exactly(name):
    m = make_model(name)
    x, t, ctx = make_inputs(m)
    with torch.no_grad():
        for tt in (t, per_token_t(m, t)):
            out = m(x, tt, ctx)
            assert out.shape == (2, m.out_dim, *GRID) and out.dtype == torch.float32
            assert out.abs().max() > 0.1
            assert torch.equal(out, staged(m, x, tt, ctx))


def ulysses(m, x, t, ctx, ranks: int):
    """The DiT under sequence parallelism over `ranks`, emulated in one process: the tokens split
    after the prologue, and around each block's attn_core the exchange an all-to-all makes
    (rank r gets every token of heads [r*h, (r+1)*h), then its own tokens of every head)."""
    state = m.prologue([x, t, ctx])
    length = state[0].size(1)
    n = length // ranks

    def shard(r):
        s, part = list(state), slice(r * n, (r + 1) * n)
        s[0] = state[0][:, part]
        for i in (1, 2):  # per-token timesteps (TI2V) follow the tokens
            if state[i].size(1) == length:
                s[i] = state[i][:, part]
        s[4], s[5] = state[4][part], state[5][part]
        return s

    shards = [shard(r) for r in range(ranks)]
    for blk in m.blocks:
        qkv = [blk.attn_in(s) for s in shards]
        b, heads, d = qkv[0][0].size(0), qkv[0][0].size(2), qkv[0][0].size(3)
        h = heads // ranks
        core = []
        for r in range(ranks):
            q, k, v = (torch.cat([qkv[j][i][:, :, r * h:(r + 1) * h] for j in range(ranks)], 1)
                       for i in range(3))
            core.append(blk.attn_core(q, k, v).view(b, length, h, d))
        for r in range(ranks):
            mine = torch.cat([core[j][:, r * n:(r + 1) * n] for j in range(ranks)], 2)
            shards[r] = blk.attn_out(shards[r], mine.reshape(b, n, heads * d))
    state[0] = torch.cat([s[0] for s in shards], 1)
    return m.epilogue(state)[0]


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("scripted", [False, True])
def test_block_parts_give_forward_under_sequence_parallelism(name, scripted):
    m = make_model(name)
    x, t, ctx = make_inputs(m)
    run = torch.jit.script(m) if scripted else m
    with torch.no_grad():
        for tt in (t, per_token_t(m, t)):
            want = m(x, tt, ctx)
            # One rank: the three parts are the block's forward, exactly.
            assert torch.equal(ulysses(run, x, tt, ctx, 1), want)
            # Two ranks (L = 18 tokens, 2 heads): products over fewer rows may round otherwise.
            got = ulysses(run, x, tt, ctx, 2)
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()


def test_state_layout_uniform_t_broadcasts():
    m = make_model("tiny-ti2v")
    x, t, ctx = make_inputs(m)
    L, D = token_count(m), m.dim
    with torch.no_grad():
        s = m.prologue([x, t, ctx])
        assert len(s) == 7
        assert s[0].shape == (2, L, D) and s[0].dtype == torch.float32
        assert s[1].shape == (2, 1, 6, D) and s[2].shape == (2, 1, D)  # not materialised per token
        assert s[3].shape == (2, m.text_len, D)
        assert s[4].shape == (L, 1, m.head_dim // 2) and s[5].shape == s[4].shape
        assert s[6].dtype == torch.int64 and s[6].tolist() == [3, 2, 3]
        s2 = m.prologue([x, per_token_t(m, t), ctx])
        assert s2[1].shape == (2, L, 6, D) and s2[2].shape == (2, L, D)
        out = m.blocks[0](s)
        assert len(out) == 7 and not torch.equal(out[0], s[0])
        assert all(out[i] is s[i] for i in range(1, 7))


# ---- 4. TorchScript ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny-ti2v", "tiny-i2v-moe"])
def test_scripted_matches_eager_and_survives_save(name, tmp_path):
    m = make_model(name)
    x, t, ctx = make_inputs(m)
    tt = per_token_t(m, t)
    sm = torch.jit.script(m)
    with torch.no_grad():
        for tv in (t, tt):
            ref = m(x, tv, ctx)
            assert torch.allclose(sm(x, tv, ctx), ref, atol=1e-5)
            s_eager, s_script = m.prologue([x, tv, ctx]), sm.prologue([x, tv, ctx])
            for a, b in zip(s_eager, s_script):
                assert a.dtype == b.dtype and torch.allclose(a, b, atol=1e-5)
            for be, bs in zip(m.blocks, sm.blocks):
                s_eager, s_script = be(s_eager), bs(s_script)
                assert torch.allclose(s_eager[0], s_script[0], atol=1e-5)
            assert torch.allclose(sm.epilogue(s_script)[0], ref, atol=1e-5)

        path = tmp_path / "dit.pt"
        torch.jit.save(sm, str(path))
        lm = torch.jit.load(str(path))
        blocks = list(lm.blocks.children())
        assert len(blocks) == len(m.blocks) and all(hasattr(b, "forward") for b in blocks)
        state = lm.prologue([x, tt, ctx])
        for b in blocks:
            state = b(state)
        ref = m(x, tt, ctx)
        assert torch.allclose(lm.epilogue(state)[0], ref, atol=1e-5)
        assert torch.allclose(lm(x, tt, ctx), ref, atol=1e-5)


# ---- 5. uniform t == the same t per token ---------------------------------------------------

def test_uniform_t_equals_constant_per_token_t():
    m = make_model("tiny-t2v-moe")
    x, t, ctx = make_inputs(m)
    with torch.no_grad():
        a = m(x, t, ctx)
        b = m(x, t[:, None].expand(-1, token_count(m)).contiguous(), ctx)
        c = m(x, per_token_t(m, t), ctx)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)  # per-token values do matter


# ---- 6. independent reference of the whole forward, unpatchify layout -----------------------

def reference_forward(m: WanModel, x, t, context):
    """A plain float64 re-statement of docs/wan22.md section 8 (complex RoPE, per-token t)."""
    P = {k: v.double() for k, v in m.state_dict().items()}
    D, n = m.dim, m.num_heads
    d = D // n

    def lin(z, name):
        return z @ P[name + ".weight"].t() + P[name + ".bias"]

    def rms(z, name):
        return z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + 1e-6) * P[name + ".weight"]

    def ln(z, name=None):
        wt, bs = (P[name + ".weight"], P[name + ".bias"]) if name else (None, None)
        return F.layer_norm(z, [D], wt, bs, 1e-6)

    def attn(q, k, v):
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        return (p @ v).transpose(1, 2).flatten(2)

    B = x.shape[0]
    u = F.conv3d(x.double(), P["patch_embedding.weight"], P["patch_embedding.bias"],
                 stride=(m.pt, m.ph, m.pw))
    f, h, w = u.shape[2:]
    L = f * h * w
    u = u.flatten(2).transpose(1, 2)
    if t.dim() == 1:
        t = t[:, None].expand(B, L)
    half = m.freq_dim // 2
    arg = t.double()[..., None] * torch.pow(10000.0, -torch.arange(half, dtype=torch.float64) / half)
    sinus = torch.cat([torch.cos(arg), torch.sin(arg)], dim=-1)
    e = lin(F.silu(lin(sinus, "time_embedding.0")), "time_embedding.2")
    e0 = lin(F.silu(e), "time_projection.1").view(B, L, 6, D)
    ctx = lin(F.gelu(lin(context.double(), "text_embedding.0"), approximate="tanh"), "text_embedding.2")

    for i in range(len(m.blocks)):
        p = "blocks.{}.".format(i)
        mod = P[p + "modulation"] + e0
        z = ln(u) * (1 + mod[:, :, 1]) + mod[:, :, 0]
        q = rms(lin(z, p + "self_attn.q"), p + "self_attn.norm_q").view(B, L, n, d)
        k = rms(lin(z, p + "self_attn.k"), p + "self_attn.norm_k").view(B, L, n, d)
        v = lin(z, p + "self_attn.v").view(B, L, n, d)
        q = rope_complex_reference(q, (f, h, w), d).double()
        k = rope_complex_reference(k, (f, h, w), d).double()
        u = u + lin(attn(q, k, v), p + "self_attn.o") * mod[:, :, 2]
        z = ln(u, p + "norm3")
        q = rms(lin(z, p + "cross_attn.q"), p + "cross_attn.norm_q").view(B, L, n, d)
        k = rms(lin(ctx, p + "cross_attn.k"), p + "cross_attn.norm_k").view(B, -1, n, d)
        v = lin(ctx, p + "cross_attn.v").view(B, -1, n, d)
        u = u + lin(attn(q, k, v), p + "cross_attn.o")
        z = ln(u) * (1 + mod[:, :, 4]) + mod[:, :, 3]
        u = u + lin(F.gelu(lin(z, p + "ffn.0"), approximate="tanh"), p + "ffn.2") * mod[:, :, 5]

    hm = P["head.modulation"] + e[:, :, None]
    y = lin(ln(u) * (1 + hm[:, :, 1]) + hm[:, :, 0], "head.head")
    y = y.view(B, f, h, w, m.pt, m.ph, m.pw, m.out_dim)
    y = torch.einsum("bfhwpqrc->bcfphqwr", y)
    return y.reshape(B, m.out_dim, f * m.pt, h * m.ph, w * m.pw)


@pytest.mark.parametrize("name", ["tiny-ti2v", "tiny-i2v-moe"])
def test_forward_matches_reference(name):
    m = make_model(name)
    x, t, ctx = make_inputs(m)
    with torch.no_grad():
        for tt in (t, per_token_t(m, t)):
            ours = m(x, tt, ctx)
            ref = reference_forward(m, x, tt, ctx).float()
            tol = 1e-5 * ref.abs().max().item()
            assert torch.allclose(ours, ref, rtol=0, atol=tol), (ours - ref).abs().max()


def test_short_context_is_zero_padded():
    m = make_model("tiny-t2v-moe")
    x, t, ctx = make_inputs(m)
    with torch.no_grad():
        assert torch.equal(m(x, t, ctx[:, :7]), m(x, t, ctx))
    with pytest.raises(RuntimeError):
        m(x, t, torch.zeros(2, m.text_len + 1, m.text_dim))
    with pytest.raises(RuntimeError):
        m(x, torch.zeros(2, 5), ctx)


def test_unpatchify_inverts_patch_layout():
    m = make_model("tiny-ti2v")
    video = torch.randn(2, m.out_dim, 3, 4, 6)
    f, h, w = 3 // m.pt, 4 // m.ph, 6 // m.pw
    v = video.view(2, m.out_dim, f, m.pt, h, m.ph, w, m.pw)
    tokens = torch.einsum("bcfphqwr->bfhwpqrc", v).reshape(2, f * h * w, -1)
    back = m.unpatchify(tokens, torch.tensor([f, h, w]))
    assert torch.equal(back, video)


# ---- mixed precision -------------------------------------------------------------------------

def test_keep_fp32_patterns_select_intended_params():
    m = make_model("tiny-ti2v")
    names = [k for k, _ in m.named_parameters()]
    kept = {k for k in names if any(fnmatch.fnmatch(k, p) for p in keep_fp32_patterns())}
    expected = {k for k in names
                if k.startswith(("patch_embedding.", "time_embedding.", "time_projection."))
                or k.endswith(("modulation", "norm3.weight", "norm3.bias", "norm_q.weight",
                               "norm_k.weight"))}
    assert kept == expected
    assert all(any(fnmatch.fnmatch(k, p) for k in names) for p in keep_fp32_patterns())


def test_bf16_cast_except_keep_fp32_runs_close():
    m = make_model("tiny-ti2v")
    x, t, ctx = make_inputs(m)
    with torch.no_grad():
        ref = m(x, per_token_t(m, t), ctx)
        for k, p in m.named_parameters():
            if not any(fnmatch.fnmatch(k, pat) for pat in keep_fp32_patterns()):
                p.data = p.data.to(torch.bfloat16)
        out = m(x, per_token_t(m, t), ctx)
        scripted = torch.jit.script(m)(x, per_token_t(m, t), ctx)
    assert out.dtype == torch.float32 and m.blocks[0].ffn[0].weight.dtype == torch.bfloat16
    err = (out - ref).abs().max() / ref.abs().max()
    assert 0 < err < 5e-2
    assert torch.allclose(scripted, out, atol=1e-5)
