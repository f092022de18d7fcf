"""Wan 2.2 diffusion transformer (WanModel), staged and TorchScript-exportable.

Module names reproduce the official state_dict keys exactly (docs/wan22.md section 8). The
math follows the official forward (same section) with three export-driven changes: RoPE in
real cos/sin arithmetic (rope.py), SDPA/explicit attention without varlen kernels
(attention.py; one sample layout, no padding, so no mask), and a dense batch with one
grid size instead of per-sample Python lists.

Precision: the hidden state, modulation, residual adds, LayerNorms and RMSNorm statistics
are fp32 as in the official code. Every Linear casts its input to its own weight dtype, so a
model cast to bf16/fp16 except `keep_fp32_patterns()` runs without autocast; attention runs
in the dtype of the projection weights.

Staged contract (inputs = [x, t, context]); the state between stages is
    state[0] x        [B, L, dim] float32       token states, (f, h, w) order
    state[1] e0       [B, Lt, 6, dim] float32   time_projection output (block modulation)
    state[2] e        [B, Lt, dim] float32      time_embedding output (head modulation)
    state[3] context  [B, text_len, dim]        text_embedding output (weight dtype)
    state[4] rope_cos [L, 1, head_dim/2] float32
    state[5] rope_sin [L, 1, head_dim/2] float32
    state[6] grid     [3] int64 (CPU)           (F, H/2, W/2) patch grid
where Lt = 1 when t is uniform ([B]) and broadcasts over the tokens, so e/e0 never
materialise [B, L, 6, dim]; Lt = L for per-token t ([B, L]). Blocks replace state[0] only;
epilogue returns [out] with out [B, out_dim, F, H, W] float32.
"""
import math
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import attention as attn
from .configs import DiTConfig
from .rope import rope_apply, rope_tables

__all__ = ["WanModel", "WanAttentionBlock", "keep_fp32_patterns", "sinusoidal_embedding"]


def keep_fp32_patterns() -> List[str]:
    """fnmatch globs of parameters that stay fp32 when the rest of the DiT is cast."""
    return [
        "patch_embedding.*",
        "time_embedding.*",
        "time_projection.*",
        "blocks.*.modulation",
        "head.modulation",
        "blocks.*.norm3.*",
        "blocks.*.self_attn.norm_q.*",
        "blocks.*.self_attn.norm_k.*",
        "blocks.*.cross_attn.norm_q.*",
        "blocks.*.cross_attn.norm_k.*",
    ]


def sinusoidal_embedding(dim: int, position: Tensor) -> Tensor:
    """[N, dim] float64 [cos | sin] of positions [N] with freq_k = 10000^(-k/(dim/2))."""
    half = dim // 2
    pos = position.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=pos.device) / half)
    arg = torch.outer(pos, freqs)
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


class LayerNormF32(nn.Module):
    """Parameter-free LayerNorm computed in fp32 (norm1, norm2, head.norm)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.dim = dim
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.float(), [self.dim], None, None, self.eps)


class AffineLayerNormF32(nn.Module):
    """Affine LayerNorm computed in fp32 whatever the weight dtype (norm3)."""

    def __init__(self, dim: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.float(), [self.dim], self.weight.float(), self.bias.float(), self.eps)


class RMSNorm(nn.Module):
    """RMSNorm over the whole last dim (all heads together), statistics in fp32."""

    def __init__(self, dim: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


class _Attention(nn.Module):
    """q/k/v/o projections and q/k RMSNorms shared by self- and cross-attention."""

    use_sdpa: torch.jit.Final[bool]

    def __init__(self, dim: int, num_heads: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.use_sdpa = attn.mode() == "sdpa"
        kw = {"device": device, "dtype": dtype}
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, **kw)
        self.k = nn.Linear(dim, dim, **kw)
        self.v = nn.Linear(dim, dim, **kw)
        self.o = nn.Linear(dim, dim, **kw)
        self.norm_q = RMSNorm(dim, eps, **kw)
        self.norm_k = RMSNorm(dim, eps, **kw)

    def _core(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q, k, v [B, L, heads, d] -> [B, Lq, heads * d] before the o projection. Any number
        of heads: sequence parallelism runs it on a share of them."""
        cdt = self.o.weight.dtype
        b, lq, n, d = q.size(0), q.size(1), q.size(2), q.size(3)
        q, k, v = q.transpose(1, 2).to(cdt), k.transpose(1, 2).to(cdt), v.transpose(1, 2).to(cdt)
        if self.use_sdpa:
            out = attn.attention_sdpa(q, k, v)
        else:
            out = attn.attention_math(q, k, v)
        return out.transpose(1, 2).reshape(b, lq, n * d)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q, k, v [B, L, heads, d] -> o-projected [B, Lq, dim]."""
        return self.o(self._core(q, k, v))


class SelfAttention(_Attention):
    """Self-attention with q/k RMSNorm and 3-D RoPE."""

    def qkv(self, x: Tensor, rope_cos: Tensor, rope_sin: Tensor) -> List[Tensor]:
        """[q, k, v], each [B, L, heads, d] in the compute dtype, q and k normed and rotated."""
        b, n, d = x.size(0), self.num_heads, self.head_dim
        cdt = self.q.weight.dtype
        xin = x.to(cdt)
        q = self.norm_q(self.q(xin)).view(b, -1, n, d)
        k = self.norm_k(self.k(xin)).view(b, -1, n, d)
        v = self.v(xin).view(b, -1, n, d)
        q = rope_apply(q, rope_cos, rope_sin)
        k = rope_apply(k, rope_cos, rope_sin)
        return [q.to(cdt), k.to(cdt), v]

    def forward(self, x: Tensor, rope_cos: Tensor, rope_sin: Tensor) -> Tensor:
        qkv = self.qkv(x, rope_cos, rope_sin)
        return self._attend(qkv[0], qkv[1], qkv[2])


class CrossAttention(_Attention):
    """Cross-attention: q from the tokens, k/v from the embedded text; no RoPE, no mask."""

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, n, d = x.size(0), self.num_heads, self.head_dim
        dt = self.q.weight.dtype
        q = self.norm_q(self.q(x.to(dt))).view(b, -1, n, d)
        c = context.to(dt)
        k = self.norm_k(self.k(c)).view(b, -1, n, d)
        v = self.v(c).view(b, -1, n, d)
        return self._attend(q, k, v)


class WanAttentionBlock(nn.Module):
    """One DiT block; forward(state) -> state with state[0] (tokens) updated."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.dim = dim
        self.norm1 = LayerNormF32(dim, eps)
        self.self_attn = SelfAttention(dim, num_heads, eps, **kw)
        self.norm3 = AffineLayerNormF32(dim, eps, **kw)
        self.cross_attn = CrossAttention(dim, num_heads, eps, **kw)
        self.norm2 = LayerNormF32(dim, eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim, **kw), nn.GELU(approximate="tanh"),
                                 nn.Linear(ffn_dim, dim, **kw))
        self.modulation = nn.Parameter(torch.empty(1, 6, dim, **kw))

    def _modulation(self, e0: Tensor) -> Tensor:
        # [1, 1, 6, dim] + [B, Lt, 6, dim]; Lt == 1 broadcasts over tokens.
        return self.modulation.float().unsqueeze(0) + e0

    def _qkv(self, state: List[Tensor], m: Tensor) -> List[Tensor]:
        h = self.norm1(state[0]) * (1.0 + m[:, :, 1]) + m[:, :, 0]
        return self.self_attn.qkv(h, state[4], state[5])

    def _finish(self, state: List[Tensor], m: Tensor, attn_out: Tensor) -> List[Tensor]:
        """Everything after self-attention's core: o projection, gate, cross-attention, FFN."""
        x = state[0] + self.self_attn.o(attn_out).float() * m[:, :, 2]
        x = x + self.cross_attn(self.norm3(x), state[3]).float()
        h = self.norm2(x) * (1.0 + m[:, :, 4]) + m[:, :, 3]
        y = self.ffn(h.to(self.ffn[0].weight.dtype))
        x = x + y.float() * m[:, :, 5]
        out = list(state)
        out[0] = x
        return out

    def forward(self, state: List[Tensor]) -> List[Tensor]:
        m = self._modulation(state[1])
        qkv = self._qkv(state, m)
        return self._finish(state, m, self.self_attn._core(qkv[0], qkv[1], qkv[2]))

    # The block in three parts, for sequence parallelism (Ulysses): each rank runs attn_in and
    # attn_out on its share of the tokens, and attn_core on every token of its share of the
    # heads; the runtime exchanges q/k/v and the result between them (all-to-all).
    # forward(state) == attn_out(state, attn_core(*attn_in(state))) on one rank.

    @torch.jit.export
    def attn_in(self, state: List[Tensor]) -> List[Tensor]:
        """Block state -> [q, k, v] of self-attention, [B, L, heads, d] in the compute dtype."""
        return self._qkv(state, self._modulation(state[1]))

    @torch.jit.export
    def attn_core(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention over [B, L, heads, d] (any number of heads) -> [B, L, heads * d]."""
        return self.self_attn._core(q, k, v)

    @torch.jit.export
    def attn_out(self, state: List[Tensor], attn_out: Tensor) -> List[Tensor]:
        """Block state and attn_core's result (all heads) -> the block's output state."""
        return self._finish(state, self._modulation(state[1]), attn_out)


class Head(nn.Module):
    """Output head: modulated fp32 LayerNorm then Linear(dim, prod(patch) * out_dim)."""

    def __init__(self, dim: int, out_dim: int, patch_elems: int, eps: float, device=None, dtype=None):
        super().__init__()
        self.norm = LayerNormF32(dim, eps)
        self.head = nn.Linear(dim, patch_elems * out_dim, device=device, dtype=dtype)
        self.modulation = nn.Parameter(torch.empty(1, 2, dim, device=device, dtype=dtype))

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        # [1, 1, 2, dim] + [B, Lt, 1, dim]
        m = self.modulation.float().unsqueeze(0) + e.unsqueeze(2)
        h = self.norm(x) * (1.0 + m[:, :, 1]) + m[:, :, 0]
        return self.head(h.to(self.head.weight.dtype)).float()


class WanModel(nn.Module):
    """Wan 2.2 DiT. forward(x [B,in_dim,F,H,W], t [B] or [B,L], context [B,text_len,text_dim])
    -> [B, out_dim, F, H, W] float32. Uniform t ([B]) keeps e/e0 at one token and broadcasts."""

    def __init__(self, cfg: DiTConfig, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        if cfg.dim % cfg.num_heads != 0 or (cfg.dim // cfg.num_heads) % 2 != 0:
            raise ValueError("dim must split into heads of even size")
        pt, ph, pw = (int(p) for p in cfg.patch_size)
        self.model_type = cfg.model_type
        self.in_dim = cfg.in_dim
        self.out_dim = cfg.out_dim
        self.dim = cfg.dim
        self.freq_dim = cfg.freq_dim
        self.text_dim = cfg.text_dim
        self.text_len = cfg.text_len
        self.num_heads = cfg.num_heads
        self.head_dim = cfg.dim // cfg.num_heads
        self.pt, self.ph, self.pw = pt, ph, pw

        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=(pt, ph, pw),
                                         stride=(pt, ph, pw), **kw)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, cfg.dim, **kw),
                                            nn.GELU(approximate="tanh"),
                                            nn.Linear(cfg.dim, cfg.dim, **kw))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim, **kw), nn.SiLU(),
                                            nn.Linear(cfg.dim, cfg.dim, **kw))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, 6 * cfg.dim, **kw))
        self.blocks = nn.ModuleList([
            WanAttentionBlock(cfg.dim, cfg.ffn_dim, cfg.num_heads, cfg.eps, **kw)
            for _ in range(cfg.num_layers)])
        self.head = Head(cfg.dim, cfg.out_dim, pt * ph * pw, cfg.eps, **kw)
        if torch.device(device if device is not None else "cpu").type != "meta":
            self.init_weights()

    def init_weights(self) -> None:
        """Initialisation in the spirit of the official one (weights normally get loaded)."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.xavier_uniform_(self.patch_embedding.weight.view(self.dim, -1))
            nn.init.zeros_(self.patch_embedding.bias)
            for seq in (self.text_embedding, self.time_embedding):
                for m in seq.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.normal_(m.weight, std=0.02)
            for blk in self.blocks:
                blk.modulation.copy_(torch.randn_like(blk.modulation) / math.sqrt(self.dim))
            self.head.modulation.copy_(torch.randn_like(self.head.modulation) / math.sqrt(self.dim))
            nn.init.zeros_(self.head.head.weight)

    @torch.jit.export
    def prologue(self, inputs: List[Tensor]) -> List[Tensor]:
        """[x, t, context] -> block state (layout in the module docstring)."""
        x, t, context = inputs[0], inputs[1], inputs[2]
        if x.dim() != 5 or x.size(1) != self.in_dim:
            raise RuntimeError("x must be [B, {}, F, H, W]".format(self.in_dim))
        b = x.size(0)
        x = self.patch_embedding(x.to(self.patch_embedding.weight.dtype))
        f, h, w = x.size(2), x.size(3), x.size(4)
        seq_len = f * h * w
        # Contiguous: the transposed view would be inherited by every residual sum (elementwise
        # outputs keep their input's strides), and each LayerNorm would first copy it back
        # (bench/README.md, "Roofline": a third of a bf16 block's time at 4096 tokens).
        x = x.flatten(2).transpose(1, 2).float().contiguous()

        if t.dim() == 1:
            tt = t.view(b, 1)
        elif t.dim() == 2 and t.size(1) == seq_len:
            tt = t
        else:
            raise RuntimeError("t must be [B] or [B, {}]".format(seq_len))
        lt = tt.size(1)
        sin_emb = sinusoidal_embedding(self.freq_dim, tt.flatten()).float()
        sin_emb = sin_emb.view(b, lt, self.freq_dim)
        e = self.time_embedding(sin_emb.to(self.time_embedding[0].weight.dtype)).float()
        e0 = self.time_projection(e.to(self.time_projection[1].weight.dtype)).float()
        e0 = e0.view(b, lt, 6, self.dim)

        if context.size(1) > self.text_len:
            raise RuntimeError("context longer than text_len {}".format(self.text_len))
        if context.size(1) < self.text_len:
            pad = context.new_zeros(b, self.text_len - context.size(1), context.size(2))
            context = torch.cat([context, pad], dim=1)
        ctx = self.text_embedding(context.to(self.text_embedding[0].weight.dtype))

        rope_cos, rope_sin = rope_tables(f, h, w, self.head_dim, x.device)
        # Host tensor: the epilogue reads it back as ints.
        grid = torch.tensor([f, h, w], dtype=torch.long)
        return [x, e0, e, ctx, rope_cos, rope_sin, grid]

    @torch.jit.export
    def epilogue(self, state: List[Tensor]) -> List[Tensor]:
        """Block state -> [out [B, out_dim, F, H, W] float32]."""
        return [self.unpatchify(self.head(state[0], state[2]), state[6])]

    @torch.jit.export
    def unpatchify(self, x: Tensor, grid: Tensor) -> Tensor:
        """[B, L, pt*ph*pw*out_dim] with (pt, ph, pw, c) innermost -> [B, out_dim, F, H, W]."""
        f, h, w = int(grid[0]), int(grid[1]), int(grid[2])
        b, c = x.size(0), self.out_dim
        u = x[:, :f * h * w].reshape(b, f, h, w, self.pt, self.ph, self.pw, c)
        u = u.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return u.reshape(b, c, f * self.pt, h * self.ph, w * self.pw)

    def forward(self, x: Tensor, t: Tensor, context: Tensor) -> Tensor:
        state = self.prologue([x, t, context])
        for block in self.blocks:
            state = block(state)
        return self.epilogue(state)[0]
