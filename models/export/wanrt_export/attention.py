"""Scaled dot-product attention shared by the exported Wan components.

Layout: q [B, heads, Lq, d], k and v [B, heads, Lk, d]; no mask, default scale 1/sqrt(d).
On PyTorch 2.x `F.scaled_dot_product_attention` is used; on 1.13 an explicit
softmax(q k^T / sqrt(d)) v, chunked over queries so the score matrix stays bounded (a model
scripted on 1.13 bakes this path into the TorchScript file, and at 720p the full score
matrix of a 14B DiT would be hundreds of GB). The choice is made once at import, so
`torch.jit.script` only ever sees the function that exists on the running version.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")

# At most this many score elements per query chunk in the explicit path (1 GiB in fp32).
MAX_SCORE_ELEMENTS = 1 << 28


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    # Softmax in fp32 whatever the input dtype, as fused kernels do.
    scores = torch.matmul(q, k.transpose(-2, -1)).float() * scale
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(probs, v)


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


if HAS_SDPA:
    def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)) v over [B, heads, L, d] via PyTorch SDPA (no mask)."""
        return F.scaled_dot_product_attention(q, k, v)
else:
    def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """softmax(q k^T / sqrt(d)) v over [B, heads, L, d], explicit (PyTorch < 2.0, no mask)."""
        return attention_math(q, k, v)
