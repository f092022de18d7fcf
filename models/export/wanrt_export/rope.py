"""3-D rotary position embedding of the Wan DiT in real arithmetic.

The official code multiplies complex128 views of q/k by `polar(1, angle)`; complex tensors
do not export, so the same rotation is written with cos/sin: adjacent channel pairs
(2i, 2i+1) of each head are rotated by angle_i. The head dim d is split over the axes
(frame, height, width) as d - 4*(d//6), 2*(d//6), 2*(d//6) channels (44/42/42 at d=128),
angle = pos / theta^(2j/axis_dim) with theta 10000.

Precision: angles and their cos/sin are computed in float64 exactly as the official
table, then rounded to float32; the rotation itself runs in float32 (the official code
rotates in float64 and rounds the result to float32, so the two differ by a few ulp).
Tables are computed per call from the grid size and are never module state.
"""
from typing import List, Tuple

import torch
from torch import Tensor

ROPE_THETA = 10000.0
# The official frequency table has 1024 rows per axis; grids beyond it are outside its domain.
ROPE_MAX_POSITIONS = 1024


def rope_axis_dims(head_dim: int) -> List[int]:
    """Channels of (frame, height, width) in one head: [d - 4*(d//6), 2*(d//6), 2*(d//6)]."""
    s = head_dim // 6
    return [head_dim - 4 * s, 2 * s, 2 * s]


def _axis_angles(n: int, axis_dim: int, device: torch.device, theta: float) -> Tensor:
    """[n, axis_dim/2] float64 angles pos * theta^(-2j/axis_dim)."""
    inv = 1.0 / torch.pow(theta, torch.arange(0, axis_dim, 2, dtype=torch.float64,
                                                   device=device) / axis_dim)
    pos = torch.arange(n, dtype=torch.float64, device=device)
    return torch.outer(pos, inv)


def rope_tables(f: int, h: int, w: int, head_dim: int, device: torch.device,
                theta: float = ROPE_THETA,
                max_positions: int = ROPE_MAX_POSITIONS) -> Tuple[Tensor, Tensor]:
    """cos, sin of shape [f*h*w, 1, head_dim/2] float32 for tokens in (f, h, w) order."""
    # Globals are not visible to TorchScript; the defaults carry the constants.
    if f > max_positions or h > max_positions or w > max_positions:
        raise RuntimeError("RoPE grid {}x{}x{} exceeds {} positions per axis".format(
            f, h, w, max_positions))
    if head_dim % 2 != 0:
        raise RuntimeError("RoPE head dim must be even")
    dims = rope_axis_dims(head_dim)
    af = _axis_angles(f, dims[0], device, theta)
    ah = _axis_angles(h, dims[1], device, theta)
    aw = _axis_angles(w, dims[2], device, theta)
    cf, ch, cw = af.size(1), ah.size(1), aw.size(1)
    ang = torch.cat([af.view(f, 1, 1, cf).expand(f, h, w, cf),
                     ah.view(1, h, 1, ch).expand(f, h, w, ch),
                     aw.view(1, 1, w, cw).expand(f, h, w, cw)], dim=3)
    ang = ang.reshape(f * h * w, 1, cf + ch + cw)
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope_apply(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (2i, 2i+1) of x [B, L, heads, d] by the tables [L, 1, d/2]; float32 out."""
    x = x.float()
    shape = x.shape
    pairs = x.reshape(shape[0], shape[1], shape[2], shape[3] // 2, 2)
    x0 = pairs[..., 0]
    x1 = pairs[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.reshape(shape)
