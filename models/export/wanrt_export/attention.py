"""Scaled dot-product attention shared by the exported Wan components (DiT, T5, VAE).

Layout: q [B, heads, Lq, d], k and v [B, heads, Lk, d].
Two implementations, chosen per export with `use(mode)`:
  "sdpa": `F.scaled_dot_product_attention` (PyTorch >= 2.1, which has its `scale=` argument);
  "math": an explicit softmax(q k^T * scale) v, chunked over queries so the score matrix stays
          bounded (at 720p the full score matrix of a 14B DiT would be hundreds of GB).
A module that attends reads `mode()` when it is constructed into a `torch.jit.Final[bool]`
(`use_sdpa`) and branches on it: TorchScript compiles only the branch of a constant condition,
so the file holds exactly one implementation, and the flag makes the two variants distinct
module types (TorchScript reuses compiled methods per type). A "math" file loads on every
LibTorch we support (1.13 on); an "sdpa" file needs LibTorch >= 2.1. The manifest records the
mode (`attention:`).
"""
import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


def _sdpa_available() -> bool:
    if not hasattr(F, "scaled_dot_product_attention"):
        return False
    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 1)


HAS_SDPA = _sdpa_available()
MODES = ("math", "sdpa")

# At most this many score elements per query chunk in the explicit path (128 MiB of fp32
# probabilities): small enough that a chunk's temporaries are reused from the heap instead of
# fresh pages, large enough for efficient products (bench/README.md, "Host allocators": at
# 4096 tokens of a TI2V-5B block, 29 % faster and 2.7 GiB less than chunks of 2^28).
MAX_SCORE_ELEMENTS = 1 << 25


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    # The scale goes into q ([L, d]) rather than the scores ([L, L]); the softmax reads the
    # scores in their own dtype and computes in fp32 (dtype=), so the only [L, L] temporaries
    # are the scores, the fp32 probabilities and, below fp32, their cast for the second matmul.
    scores = torch.matmul(q * scale, k.transpose(-2, -1))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    return torch.matmul(probs.to(v.dtype), v)


def attention_math(q: Tensor, k: Tensor, v: Tensor, max_scores: int = MAX_SCORE_ELEMENTS) -> Tensor:
    """Explicit softmax(q k^T / sqrt(d)) v over [B, heads, L, d], chunked over queries."""
    scale = float(q.size(-1)) ** -0.5
    lq = q.size(2)
    per_query = q.size(0) * q.size(1) * k.size(2)
    chunk = max(1, max_scores // max(1, per_query))
    if chunk >= lq:
        return _attend(q, k, v, scale)
    outs = []
    for start in range(0, lq, chunk):
        outs.append(_attend(q[:, :, start:start + chunk], k, v, scale))
    return torch.cat(outs, dim=2)


def attention_biased_math(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """softmax(q k^T + bias) v without scaling (T5), softmax in fp32."""
    scores = torch.matmul(q, k.transpose(-2, -1)) + bias
    probs = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return torch.matmul(probs, v)


def attention_sdpa(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d)) v via PyTorch's fused SDPA (no mask)."""
    return F.scaled_dot_product_attention(q, k, v)


def attention_biased_sdpa(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """softmax(q k^T + bias) v via SDPA with an additive mask and scale 1 (T5)."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)


_mode = "math"


def default_mode() -> str:
    """SDPA where this PyTorch has it, else the explicit path."""
    return "sdpa" if HAS_SDPA else "math"


def mode() -> str:
    """The attention that modules constructed now use."""
    return _mode


def set_mode(new_mode: str) -> None:
    """Make modules constructed from now on use `new_mode` ("math" or "sdpa")."""
    global _mode
    if new_mode not in MODES:
        raise ValueError(f"unknown attention '{new_mode}' (expected one of {', '.join(MODES)})")
    if new_mode == "sdpa" and not HAS_SDPA:
        raise ValueError(f"attention 'sdpa' needs PyTorch >= 2.1 (this is {torch.__version__}); "
                         "use --attention math")
    _mode = new_mode


@contextlib.contextmanager
def use(new_mode: str) -> Iterator[None]:
    """Construct modules in a block with `new_mode`, then restore the previous mode."""
    previous = _mode
    set_mode(new_mode)
    try:
        yield
    finally:
        set_mode(previous)


set_mode(default_mode())
