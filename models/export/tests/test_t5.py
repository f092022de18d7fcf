"""umT5 encoder: official names/shapes, bucket formula, staged exactness, masking, scripting."""
import fnmatch
import math

import pytest
import torch

from conftest import load_tsv
from wanrt_export import attention as attn
from wanrt_export import t5 as t5mod
from wanrt_export.configs import TINY_T5, T5Config
from wanrt_export.t5 import UMT5Encoder, keep_fp32_patterns, relative_position_bucket

REAL_PARAMS = 5_680_910_336
TSV = "t5_umt5_xxl_encoder.tsv"


def tiny(seed: int = 0, scale: float = 0.02) -> UMT5Encoder:
    torch.manual_seed(seed)
    m = UMT5Encoder(TINY_T5).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * scale)
    return m


def padded_batch(lengths, total: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, TINY_T5.vocab_size, (len(lengths), total), generator=g)
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        ids[b, n:] = 0
    return ids, mask


# ---- independent references -------------------------------------------------------------

def ref_bucket(rel: int, num_buckets: int, max_dist: int) -> int:
    """Bidirectional T5 bucket of (key - query), written out as scalar arithmetic."""
    half = num_buckets // 2
    base = half if rel > 0 else 0
    n = abs(rel)
    exact = half // 2
    if n < exact:
        return base + n
    v = exact + int(math.log(n / exact) / math.log(max_dist / exact) * (half - exact))
    return base + min(v, half - 1)


def ref_rms(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def ref_encoder(model: UMT5Encoder, cfg: T5Config, ids, mask):
    """Per-sample, per-head float64 re-implementation from the written description."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    h_dim = cfg.dim_attn // cfg.num_heads
    outs = []
    for b in range(ids.size(0)):
        L = ids.size(1)
        x = sd["token_embedding.weight"][ids[b]]
        for i in range(cfg.num_layers):
            p = f"blocks.{i}."
            table = sd[p + "pos_embedding.embedding.weight"]
            h = ref_rms(x, sd[p + "norm1.weight"], cfg.eps)
            q, k, v = (h @ sd[p + f"attn.{n}.weight"].t() for n in "qkv")
            heads = []
            for hd in range(cfg.num_heads):
                sl = slice(hd * h_dim, (hd + 1) * h_dim)
                s = q[:, sl] @ k[:, sl].t()  # no 1/sqrt(d)
                for qi in range(L):
                    for kj in range(L):
                        s[qi, kj] += table[ref_bucket(kj - qi, cfg.num_buckets, cfg.max_dist), hd]
                s[:, mask[b] == 0] = float("-inf")
                heads.append(torch.softmax(s, -1) @ v[:, sl])
            x = x + torch.cat(heads, -1) @ sd[p + "attn.o.weight"].t()
            h = ref_rms(x, sd[p + "norm2.weight"], cfg.eps)
            g = h @ sd[p + "ffn.gate.0.weight"].t()
            gelu = 0.5 * g * (1 + torch.tanh(math.sqrt(2 / math.pi) * (g + 0.044715 * g ** 3)))
            x = x + ((h @ sd[p + "ffn.fc1.weight"].t()) * gelu) @ sd[p + "ffn.fc2.weight"].t()
        outs.append(ref_rms(x, sd["norm.weight"], cfg.eps))
    return torch.stack(outs)


def run_staged(model, ids, mask):
    state = model.prologue([ids, mask])
    for blk in model.blocks.children():  # a loaded ModuleList does not iterate
        state = blk(state)
    return model.epilogue(state)[0]


# ---- tests -------------------------------------------------------------------------------

def test_real_config_matches_official_state_dict():
    rows = load_tsv(TSV)
    m = UMT5Encoder(T5Config(), device="meta")
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert len(ours) == len(rows)
    assert set(ours.items()) == set(rows)
    assert all(p.device.type == "meta" for p in m.parameters())
    assert sum(p.numel() for p in m.parameters()) == REAL_PARAMS
    assert sum(math.prod(s) for _, s in rows) == REAL_PARAMS


def test_keep_fp32_patterns_select_norms_and_position_tables():
    names = [n for n, _ in load_tsv(TSV)]
    kept = {n for n in names if any(fnmatch.fnmatch(n, p) for p in keep_fp32_patterns())}
    expected = {n for n in names if n.endswith("norm1.weight") or n.endswith("norm2.weight")
                or n == "norm.weight" or n.endswith("pos_embedding.embedding.weight")}
    assert kept == expected and len(kept) == 24 * 3 + 1


@pytest.mark.parametrize("num_buckets,max_dist", [(32, 128), (16, 40)])
def test_relative_bucket_matches_scalar_reference(num_buckets, max_dist):
    rel = torch.arange(-700, 701)
    got = relative_position_bucket(rel, num_buckets, max_dist).tolist()
    want = [ref_bucket(r, num_buckets, max_dist) for r in range(-700, 701)]
    assert got == want
    assert max(got) == num_buckets - 1 and min(got) == 0


def test_position_buckets_orientation_is_key_minus_query():
    L = 200
    got = t5mod.position_buckets(L, 32, 128, torch.device("cpu"))
    assert got.shape == (L, L) and got.dtype == torch.long
    for qi, kj in [(0, 0), (0, 5), (5, 0), (3, 199), (199, 3), (100, 117), (117, 100)]:
        assert got[qi, kj].item() == ref_bucket(kj - qi, 32, 128)


def test_forward_matches_independent_reference():
    m = tiny(seed=3, scale=0.2)
    ids, mask = padded_batch([7, 4], 7)
    with torch.no_grad():
        out = m(ids, mask)
    ref = ref_encoder(m, TINY_T5, ids, mask)
    assert out.dtype == torch.float32 and out.shape == (2, 7, TINY_T5.dim)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


def test_staged_equals_forward_exactly():
    m = tiny(seed=0)
    ids, mask = padded_batch([12, 9, 3], 12)
    with torch.no_grad():
        full = m(ids, mask)
        state = m.prologue([ids, mask])
        assert len(state) == 3 and state[1].dtype == torch.bool and state[2].shape == (12, 12)
        staged = run_staged(m, ids, mask)
        after = m.blocks[0](state)
        assert after[1] is state[1] and after[2] is state[2]
    assert torch.equal(full, staged)


def test_padding_does_not_change_real_tokens():
    m = tiny(seed=5, scale=0.2)
    ids, mask = padded_batch([6, 6], 10)
    with torch.no_grad():
        padded = m(ids, mask)
        alone = m(ids[:1, :6], mask[:1, :6])
        torch.testing.assert_close(padded[0, :6], alone[0], rtol=1e-5, atol=1e-6)
        # What sits in the padding must not matter at all.
        ids2 = ids.clone()
        ids2[1, 6:] = torch.arange(100, 104)
        assert torch.equal(m(ids2, mask)[1, :6], padded[1, :6])
        # Sanity: without the mask the padding does change the real tokens.
        unmasked = m(ids[:1], torch.ones_like(mask[:1]))
        assert (unmasked[0, :6] - alone[0]).abs().max() > 1e-3


def test_bool_mask_equals_int_mask():
    m = tiny(seed=2)
    ids, mask = padded_batch([5, 2], 5)
    with torch.no_grad():
        assert torch.equal(m(ids, mask), m(ids, mask.bool()))


def test_scripted_matches_eager_and_round_trips(tmp_path):
    m = tiny(seed=4, scale=0.1)
    ids, mask = padded_batch([8, 5], 8)
    scripted = torch.jit.script(m)
    path = tmp_path / "t5.pt"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        eager = m(ids, mask)
        out_s = scripted(ids, mask)
        out_l = loaded(ids, mask)
        staged_l = run_staged(loaded, ids, mask)
    torch.testing.assert_close(out_s, eager, rtol=1e-5, atol=1e-5)
    assert torch.equal(out_l, out_s)
    assert torch.equal(staged_l, out_l)
    assert len(list(loaded.blocks.children())) == TINY_T5.num_layers


def test_mixed_precision_keeps_fp32_patterns():
    m = tiny(seed=6, scale=0.2)
    ids, mask = padded_batch([6, 3], 6)
    with torch.no_grad():
        ref = m(ids, mask)
        for name, p in m.named_parameters():
            if not any(fnmatch.fnmatch(name, pat) for pat in keep_fp32_patterns()):
                p.data = p.data.to(torch.bfloat16)
        out = m(ids, mask)
        out_s = torch.jit.script(m)(ids, mask)
    assert m.blocks[0].attn.q.weight.dtype == torch.bfloat16
    assert m.norm.weight.dtype == torch.float32 and out.dtype == torch.float32
    assert torch.equal(out, out_s)
    err = (out - ref).abs().max() / ref.abs().max()
    assert err < 5e-2


@pytest.mark.skipif(not attn.HAS_SDPA, reason="needs PyTorch >= 2.1 (SDPA with scale=)")
def test_sdpa_path_matches_math_path():
    m = tiny(seed=7, scale=0.2)
    ids, mask = padded_batch([6, 4], 6)
    with torch.no_grad():
        with attn.use("sdpa"):
            a = m(ids, mask)
        with attn.use("math"):
            b = m(ids, mask)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
