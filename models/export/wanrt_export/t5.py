"""umT5-xxl text encoder (encoder only), staged and scriptable.

Follows docs/wan22.md section 7: RMS norm without bias (fp32 statistics), attention without
1/sqrt(d) scaling and without biases, a gated-GELU(tanh) feed-forward, and a bidirectional
relative-position bias (32 buckets, max distance 128) owned by every block
(shared_pos=False). Parameter names match the official checkpoint
(`t5_umt5_xxl_encoder.tsv`); there are no dropout modules (eval only).

Staged contract (state layout, every entry a Tensor):
    prologue([ids [B, L] int64, mask [B, L] int64 or bool, 1 = real token])
        -> state = [x [B, L, dim], keep [B, 1, 1, L] bool, buckets [L, L] int64]
    blocks[i]: state -> state (only x changes; keep and buckets pass through)
    epilogue(state) -> [hidden [B, L, dim]]
`keep` marks the keys that may be attended to; `buckets[i, j]` is the relative-position
bucket of key j seen from query i, computed once in the prologue.

Mixed precision: the runtime casts everything to bf16/fp16 except `keep_fp32_patterns()`.
Each linear layer therefore casts its input to its own weight dtype, and a norm with a
half-precision weight casts its fp32 result to that dtype (as the official T5LayerNorm).
With fp32 norms the final hidden state comes out in fp32.
"""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import attention as attn
from .configs import T5Config


def keep_fp32_patterns() -> List[str]:
    """Parameter-name glob patterns that stay fp32 when the encoder is cast to half precision."""
    return ["*norm*", "*pos_embedding*"]


def dtype_min(dtype: torch.dtype) -> float:
    """torch.finfo(dtype).min for the floating dtypes we run in (finfo is not scriptable)."""
    if dtype == torch.float16:
        return -65504.0
    if dtype == torch.bfloat16:
        return -3.3895313892515355e38
    if dtype == torch.float64:
        return -1.7976931348623157e308
    return -3.4028234663852886e38


def relative_position_bucket(rel_pos: Tensor, num_buckets: int, max_dist: int) -> Tensor:
    """Bidirectional T5 bucket of each relative position (key index minus query index).

    Half the buckets are for keys after the query; within each half the first
    `n // 2` distances get one bucket each and larger ones share log-spaced buckets up to
    `max_dist`, beyond which everything falls into the last bucket. The log is taken in
    float32 as in the official (and original Mesh TensorFlow) code.
    """
    half = num_buckets // 2
    max_exact = half // 2
    upper = (rel_pos > 0).to(torch.long) * half
    dist = torch.abs(rel_pos)
    # The clamp only keeps log() finite where the exact branch is selected anyway.
    far = dist.clamp(min=max_exact).float()
    large = max_exact + (torch.log(far / max_exact) / math.log(max_dist / max_exact)
                         * (half - max_exact)).to(torch.long)
    large = torch.clamp(large, max=half - 1)
    return upper + torch.where(dist < max_exact, dist, large)


def position_buckets(length: int, num_buckets: int, max_dist: int, device: torch.device) -> Tensor:
    """[length, length] bucket indices, entry [i, j] for query i and key j."""
    pos = torch.arange(length, dtype=torch.long, device=device)
    return relative_position_bucket(pos.unsqueeze(0) - pos.unsqueeze(1), num_buckets, max_dist)


def _fp16_clamp(x: Tensor) -> Tensor:
    # The official code clamps only when an inf is present; clamping always avoids a
    # device sync and changes nothing but values within 1000 of the fp16 limit.
    if x.dtype == torch.float16:
        return torch.clamp(x, min=-64504.0, max=64504.0)  # finfo(float16).max - 1000
    return x


class T5LayerNorm(nn.Module):
    """RMS norm without bias; statistics in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        if self.weight.dtype == torch.float16 or self.weight.dtype == torch.bfloat16:
            y = y.to(self.weight.dtype)
        return self.weight * y


class T5Attention(nn.Module):
    """Multi-head self-attention without scaling; `bias` [B or 1, heads, L, L] is additive."""

    use_sdpa: torch.jit.Final[bool]

    def __init__(self, dim: int, dim_attn: int, num_heads: int, device=None, dtype=None):
        super().__init__()
        self.use_sdpa = attn.mode() == "sdpa"
        assert dim_attn % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = dim_attn // num_heads
        self.q = nn.Linear(dim, dim_attn, bias=False, device=device, dtype=dtype)
        self.k = nn.Linear(dim, dim_attn, bias=False, device=device, dtype=dtype)
        self.v = nn.Linear(dim, dim_attn, bias=False, device=device, dtype=dtype)
        self.o = nn.Linear(dim_attn, dim, bias=False, device=device, dtype=dtype)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, l = x.size(0), x.size(1)
        n, c = self.num_heads, self.head_dim
        x = x.to(self.q.weight.dtype)
        q = self.q(x).view(b, l, n, c).transpose(1, 2)
        k = self.k(x).view(b, l, n, c).transpose(1, 2)
        v = self.v(x).view(b, l, n, c).transpose(1, 2)
        bias = bias.to(q.dtype)
        if self.use_sdpa:
            out = attn.attention_biased_sdpa(q, k, v, bias)
        else:
            out = attn.attention_biased_math(q, k, v, bias)
        out = out.transpose(1, 2).reshape(b, l, n * c)
        return self.o(out.to(self.o.weight.dtype))


class T5FeedForward(nn.Module):
    """Gated feed-forward: fc2(fc1(x) * gelu_tanh(gate(x)))."""

    def __init__(self, dim: int, dim_ffn: int, device=None, dtype=None):
        super().__init__()
        # Sequential so the official name `gate.0.weight` holds; the GELU has no parameters.
        self.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False, device=device, dtype=dtype),
                                  nn.GELU(approximate="tanh"))
        self.fc1 = nn.Linear(dim, dim_ffn, bias=False, device=device, dtype=dtype)
        self.fc2 = nn.Linear(dim_ffn, dim, bias=False, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.fc1.weight.dtype)
        h = self.fc1(x) * self.gate(x)
        return self.fc2(h.to(self.fc2.weight.dtype))


class T5RelativeEmbedding(nn.Module):
    """Per-head bias for each relative-position bucket."""

    def __init__(self, num_buckets: int, num_heads: int, device=None, dtype=None):
        super().__init__()
        self.embedding = nn.Embedding(num_buckets, num_heads, device=device, dtype=dtype)

    def forward(self, buckets: Tensor) -> Tensor:
        """buckets [Lq, Lk] -> bias [1, heads, Lq, Lk]."""
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0)


class T5Block(nn.Module):
    """Pre-norm self-attention + gated FFN, each with a residual; own position bias."""

    def __init__(self, cfg: T5Config, device=None, dtype=None):
        super().__init__()
        self.norm1 = T5LayerNorm(cfg.dim, cfg.eps, device=device, dtype=dtype)
        self.attn = T5Attention(cfg.dim, cfg.dim_attn, cfg.num_heads, device=device, dtype=dtype)
        self.norm2 = T5LayerNorm(cfg.dim, cfg.eps, device=device, dtype=dtype)
        self.ffn = T5FeedForward(cfg.dim, cfg.dim_ffn, device=device, dtype=dtype)
        self.pos_embedding = T5RelativeEmbedding(cfg.num_buckets, cfg.num_heads,
                                                 device=device, dtype=dtype)

    def forward(self, state: List[Tensor]) -> List[Tensor]:
        x, keep, buckets = state[0], state[1], state[2]
        dt = self.attn.q.weight.dtype
        # Bias in the compute dtype with finfo.min on masked keys, as the official code.
        bias = self.pos_embedding(buckets).to(dt).masked_fill(keep.logical_not(), dtype_min(dt))
        x = _fp16_clamp(x + self.attn(self.norm1(x), bias))
        x = _fp16_clamp(x + self.ffn(self.norm2(x)))
        return [x, keep, buckets]


class UMT5Encoder(nn.Module):
    """The umT5 encoder of Wan (T5Encoder, shared_pos=False); see the module docstring."""

    def __init__(self, cfg: T5Config, device=None, dtype=None):
        super().__init__()
        self.num_buckets = cfg.num_buckets
        self.max_dist = cfg.max_dist
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.dim, device=device, dtype=dtype)
        self.blocks = nn.ModuleList([T5Block(cfg, device=device, dtype=dtype)
                                     for _ in range(cfg.num_layers)])
        self.norm = T5LayerNorm(cfg.dim, cfg.eps, device=device, dtype=dtype)

    @torch.jit.export
    def prologue(self, inputs: List[Tensor]) -> List[Tensor]:
        """[ids [B, L], mask [B, L]] -> [x, keep, buckets] (layout in the module docstring)."""
        ids, mask = inputs[0], inputs[1]
        x = self.token_embedding(ids)
        keep = (mask != 0).view(mask.size(0), 1, 1, mask.size(1))
        buckets = position_buckets(ids.size(1), self.num_buckets, self.max_dist, ids.device)
        return [x, keep, buckets]

    @torch.jit.export
    def epilogue(self, state: List[Tensor]) -> List[Tensor]:
        """Final RMS norm: state -> [hidden [B, L, dim]]."""
        return [self.norm(state[0])]

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        """ids [B, L] int64, mask [B, L] (1 = real token) -> hidden [B, L, dim] for all L rows."""
        state = self.prologue([ids, mask])
        for block in self.blocks:
            state = block(state)
        return self.epilogue(state)[0]


def build_t5(cfg: Optional[T5Config] = None, device=None, dtype=None) -> UMT5Encoder:
    """UMT5Encoder for `cfg` (default: the real umT5-xxl), in eval mode."""
    return UMT5Encoder(cfg if cfg is not None else T5Config(), device=device, dtype=dtype).eval()
