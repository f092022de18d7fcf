"""Layers shared by the Wan 2.1 and Wan 2.2 causal video VAEs, and their common top level.

Both VAEs are causal in time. The official code streams them chunk by chunk with a Python
list `feat_cache` holding None, tensors or the string 'Rep'. Here the cache is an explicit
`List[Tensor]` so the decoder can be exported as a step function:

* every cached layer owns one slot, given at construction by a `CacheRegistry`, which
  also records the slot's shape as `[channels, frames, num, den]`; the spatial size of a
  slot is `h * num // den` (decoder: h = latent size; encoder: h = patchified input size);
* a causal 3x3x3 conv slot holds the last 2 input frames of the zero-front-padded stream,
  so it starts as zeros and is updated to the last 2 frames of `cat(slot, chunk)`; this is
  bit-for-bit what the official padding/caching produces;
* the temporal upsample (decoder) skips its time conv on the first chunk and leaves its slot
  at zeros, which reproduces the official 'Rep' behaviour (the second chunk sees two zero
  frames, not the first chunk's frame);
* the temporal downsample (encoder) passes the first chunk through and keeps 1 frame;
* the decoder cache ends with an int64 step counter `[1]`; step 0 is the first chunk.

Precision: the official pipeline builds the VAE with dtype=torch.float and runs it with
autocast disabled, i.e. fp32 end to end; it is never cast by default (see
`keep_fp32_patterns`).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import attention as attn

CACHE_T = 2


def keep_fp32_patterns() -> List[str]:
    """Parameter-name patterns that stay fp32 when the component is cast.

    The VAE is stored and run in fp32 (the official code never casts it), so a bundle keeps
    the whole VAE fp32 by default; should a plan cast it anyway, no layer needs pinning.
    """
    return []


class CacheRegistry:
    """Construction-time allocator of cache slots (plain Python, never scripted)."""

    def __init__(self):
        self.specs: List[List[int]] = []

    def add(self, channels: int, frames: int, num: int, den: int) -> int:
        self.specs.append([int(channels), int(frames), int(num), int(den)])
        return len(self.specs) - 1


def _triple(v) -> Tuple[int, int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


class CausalConv3d(nn.Conv3d):
    """Conv3d, causal in time: 2*pad_t frames of history (cache slot, zeros at the start)."""

    def __init__(self, in_dim: int, out_dim: int, kernel, stride=1, padding=0,
                 reg: Optional[CacheRegistry] = None, scale: Tuple[int, int] = (1, 1),
                 device=None, dtype=None):
        pad = _triple(padding)
        super().__init__(in_dim, out_dim, kernel, stride=stride, padding=(0, pad[1], pad[2]),
                         device=device, dtype=dtype)
        self.cache_frames = 2 * pad[0]
        self.slot = -1
        if self.cache_frames > 0:
            if reg is None:
                raise ValueError("a causal conv with temporal padding needs a CacheRegistry")
            self.slot = reg.add(in_dim, self.cache_frames, scale[0], scale[1])

    def forward(self, x: Tensor, cache: List[Tensor]) -> Tensor:
        if self.slot >= 0:
            x = torch.cat([cache[self.slot], x], 2)
            cache[self.slot] = x[:, :, x.shape[2] - self.cache_frames:].clone()
        return F.conv3d(x, self.weight, self.bias, self.stride, self.padding)


class RMSNorm(nn.Module):
    """Official RMS_norm: F.normalize over channels * sqrt(dim) * gamma (no bias)."""

    def __init__(self, dim: int, images: bool = True, device=None, dtype=None):
        super().__init__()
        shape = (dim, 1, 1) if images else (dim, 1, 1, 1)
        self.scale = float(dim) ** 0.5
        self.gamma = nn.Parameter(torch.ones(shape, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


def _frames_to_batch(x: Tensor) -> Tensor:
    """[B, C, T, H, W] -> [B*T, C, H, W]."""
    return x.transpose(1, 2).reshape(x.shape[0] * x.shape[2], x.shape[1], x.shape[3], x.shape[4])


def _batch_to_frames(y: Tensor, b: int) -> Tensor:
    """[B*T, C, H, W] -> [B, C, T, H, W] (contiguous)."""
    t = y.shape[0] // b
    return y.reshape(b, t, y.shape[1], y.shape[2], y.shape[3]).transpose(1, 2).contiguous()


class Resample(nn.Module):
    """Spatial x2 up/down sampling per frame, optionally with a causal temporal x2.

    up: nearest x2 + Conv2d(dim, out_dim, 3); temporal up runs `time_conv` (dim -> 2*dim,
    kernel 3x1x1) first and interleaves the two halves as consecutive frames.
    down: ZeroPad2d(0,1,0,1) + Conv2d(dim, dim, 3, stride 2); temporal down then runs a
    stride-2 3x1x1 conv over [last frame of the previous chunk, chunk].
    """

    def __init__(self, dim: int, out_dim: int, up: bool, temporal: bool, reg: CacheRegistry,
                 scale: Tuple[int, int], device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.up = up
        self.temporal = temporal
        self.slot = -1
        self.time_conv: Optional[CausalConv3d] = None
        if up:
            self.resample = nn.Sequential(
                nn.Upsample(scale_factor=(2.0, 2.0), mode="nearest-exact"),
                nn.Conv2d(dim, out_dim, 3, padding=1, **kw))
            if temporal:
                self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0),
                                              reg=reg, scale=scale, **kw)
        else:
            self.resample = nn.Sequential(
                nn.ZeroPad2d((0, 1, 0, 1)),
                nn.Conv2d(dim, dim, 3, stride=(2, 2), **kw))
            if temporal:
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), **kw)
                self.slot = reg.add(dim, 1, scale[0], scale[1] * 2)

    def forward(self, x: Tensor, cache: List[Tensor], first: bool) -> Tensor:
        b = x.shape[0]
        tc = self.time_conv
        if self.up and tc is not None and not first:
            c, t = x.shape[1], x.shape[2]
            x = tc(x, cache)
            # channels [half 0 | half 1] at time i become frames 2i and 2i+1
            x = x.reshape(b, 2, c, t, x.shape[3], x.shape[4]).permute(0, 2, 3, 1, 4, 5)
            x = x.reshape(b, c, t * 2, x.shape[4], x.shape[5])
        x = _batch_to_frames(self.resample(_frames_to_batch(x)), b)
        if not self.up and tc is not None:
            last = x[:, :, x.shape[2] - 1:].clone()
            if not first:
                x = tc(torch.cat([cache[self.slot], x], 2), cache)
            cache[self.slot] = last
        return x


class ResidualBlock(nn.Module):
    """RMS -> SiLU -> causal conv -> RMS -> SiLU -> (dropout) -> causal conv, + shortcut."""

    def __init__(self, in_dim: int, out_dim: int, reg: CacheRegistry, scale: Tuple[int, int],
                 device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        # indices 0..6 follow the official nn.Sequential so parameter names match
        self.residual = nn.ModuleList([
            RMSNorm(in_dim, images=False, **kw), nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1, reg=reg, scale=scale, **kw),
            RMSNorm(out_dim, images=False, **kw), nn.SiLU(), nn.Dropout(0.0),
            CausalConv3d(out_dim, out_dim, 3, padding=1, reg=reg, scale=scale, **kw)])
        self.shortcut: Optional[CausalConv3d] = (
            CausalConv3d(in_dim, out_dim, 1, **kw) if in_dim != out_dim else None)

    def forward(self, x: Tensor, cache: List[Tensor], first: bool) -> Tensor:
        h = x
        sc = self.shortcut
        if sc is not None:
            h = sc(x, cache)
        y = F.silu(self.residual[0](x))
        y = self.residual[2](y, cache)
        y = F.silu(self.residual[3](y))
        y = self.residual[6](y, cache)
        return y + h


class AttentionBlock(nn.Module):
    """Single-head spatial self-attention applied to each frame independently."""

    use_sdpa: torch.jit.Final[bool]

    def __init__(self, dim: int, device=None, dtype=None):
        super().__init__()
        self.use_sdpa = attn.mode() == "sdpa"
        kw = dict(device=device, dtype=dtype)
        self.norm = RMSNorm(dim, images=True, **kw)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1, **kw)
        self.proj = nn.Conv2d(dim, dim, 1, **kw)
        nn.init.zeros_(self.proj.weight)  # official init; real weights are loaded over it

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[0], x.shape[1]
        h, w = x.shape[3], x.shape[4]
        y = self.norm(_frames_to_batch(x))
        n = y.shape[0]
        # contiguous so q/k/v have a unit-stride last dim (needed by fused SDPA kernels)
        qkv = self.to_qkv(y).reshape(n, 3 * c, h * w).transpose(1, 2).contiguous().unsqueeze(1)
        q = qkv[:, :, :, :c]
        k = qkv[:, :, :, c:2 * c]
        v = qkv[:, :, :, 2 * c:]
        if self.use_sdpa:
            y = attn.attention_sdpa(q, k, v)
        else:
            y = attn.attention_math(q, k, v)
        y = y.squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return _batch_to_frames(self.proj(y), b) + x


def middle_blocks(dim: int, reg: CacheRegistry, scale: Tuple[int, int], **kw) -> nn.ModuleList:
    """The middle of an encoder or decoder: ResidualBlock, AttentionBlock, ResidualBlock."""
    return nn.ModuleList([ResidualBlock(dim, dim, reg, scale, **kw), AttentionBlock(dim, **kw),
                          ResidualBlock(dim, dim, reg, scale, **kw)])


def output_head(dim: int, out_channels: int, reg: CacheRegistry, scale: Tuple[int, int],
                **kw) -> nn.ModuleList:
    """The head of an encoder or decoder: RMSNorm, SiLU, causal 3x3x3 conv."""
    return nn.ModuleList([RMSNorm(dim, images=False, **kw), nn.SiLU(),
                          CausalConv3d(dim, out_channels, 3, padding=1, reg=reg, scale=scale,
                                       **kw)])


class CausalEncoder(nn.Module):
    """conv1 -> downsamples -> middle -> head; subclasses build the four parts (in that order:
    cache slots are numbered as the layers are built)."""

    def forward(self, x: Tensor, cache: List[Tensor], first: bool) -> Tensor:
        x = self.conv1(x, cache)
        for layer in self.downsamples:
            x = layer(x, cache, first)
        x = self.middle[0](x, cache, first)
        x = self.middle[1](x)
        x = self.middle[2](x, cache, first)
        return self.head[2](F.silu(self.head[0](x)), cache)


class CausalDecoder(nn.Module):
    """conv1 -> middle -> upsamples -> head; subclasses build the four parts in that order."""

    def forward(self, x: Tensor, cache: List[Tensor], first: bool) -> Tensor:
        x = self.conv1(x, cache)
        x = self.middle[0](x, cache, first)
        x = self.middle[1](x)
        x = self.middle[2](x, cache, first)
        for layer in self.upsamples:
            x = layer(x, cache, first)
        return self.head[2](F.silu(self.head[0](x)), cache)


def patchify(x: Tensor, p: int) -> Tensor:
    """[B, C, F, H*p, W*p] -> [B, C*p*p, F, H, W], channel = c*p*p + r*p + q
    (official einops "b c f (h q) (w r) -> b (c r q) f h w")."""
    if p == 1:
        return x
    b, c, f = x.shape[0], x.shape[1], x.shape[2]
    h, w = x.shape[3] // p, x.shape[4] // p
    x = x.reshape(b, c, f, h, p, w, p).permute(0, 1, 6, 4, 2, 3, 5)
    return x.reshape(b, c * p * p, f, h, w)


def unpatchify(x: Tensor, p: int) -> Tensor:
    """Inverse of `patchify`: [B, C*p*p, F, H, W] -> [B, C, F, H*p, W*p]."""
    if p == 1:
        return x
    b, f, h, w = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
    c = x.shape[1] // (p * p)
    x = x.reshape(b, c, p, p, f, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, c, f, h * p, w * p)


class WanVAEBase(nn.Module):
    """Common top level: latent normalisation, 1x1x1 convs, chunked encode, stepped decode.

    Subclasses build `encoder(x, cache, first)` and `decoder(x, cache, first)` modules with
    their CacheRegistry specs and hand them to this constructor.
    """

    def __init__(self, cfg, encoder: nn.Module, decoder: nn.Module,
                 enc_specs: List[List[int]], dec_specs: List[List[int]],
                 device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        z = int(cfg.z_dim)
        if len(cfg.mean) != z or len(cfg.std) != z:
            raise ValueError(f"VAEConfig mean/std must have {z} values")
        self.z_dim = z
        self.patch = int(cfg.patch)
        self.stride_t = int(cfg.stride[0])
        self.stride_s = int(cfg.stride[1])
        self.enc_specs = enc_specs
        self.dec_specs = dec_specs
        # official order of the state dict: encoder, conv1, conv2, decoder
        self.encoder = encoder
        self.conv1 = CausalConv3d(2 * z, 2 * z, 1, **kw)
        self.conv2 = CausalConv3d(z, z, 1, **kw)
        self.decoder = decoder
        mean = torch.tensor([float(v) for v in cfg.mean], **kw)
        std = torch.tensor([float(v) for v in cfg.std], **kw)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        # the official code scales by 1/std: encode multiplies by it, decode divides by it
        self.register_buffer("inv_std", 1.0 / std, persistent=False)

    def _init_encode_cache(self, x: Tensor) -> List[Tensor]:
        b, h, w = x.shape[0], x.shape[3], x.shape[4]
        out: List[Tensor] = []
        for s in self.enc_specs:
            out.append(torch.zeros([b, s[0], s[1], h * s[2] // s[3], w * s[2] // s[3]],
                                   dtype=x.dtype, device=x.device))
        return out

    @torch.jit.export
    def encode(self, video: Tensor) -> Tensor:
        """Video [B, 3, 1+4n, H, W] in [-1, 1] -> normalised latent mean [B, z, 1+n, h, w]."""
        f = video.shape[2]
        if (f - 1) % 4 != 0:
            raise ValueError("encode needs 1+4n frames, got " + str(f))
        if video.shape[3] % self.stride_s != 0 or video.shape[4] % self.stride_s != 0:
            raise ValueError("encode needs H and W divisible by " + str(self.stride_s))
        x = patchify(video, self.patch)
        cache = self._init_encode_cache(x)
        # only the mean half of conv1's output is used (deterministic encode)
        w_mu = self.conv1.weight[:self.z_dim]
        b_mu = self.conv1.bias
        if b_mu is not None:
            b_mu = b_mu[:self.z_dim]
        outs: List[Tensor] = []
        for i in range(1 + (f - 1) // 4):
            if i == 0:
                chunk = x[:, :, :1]
            else:
                chunk = x[:, :, 1 + 4 * (i - 1):1 + 4 * i]
            y = self.encoder(chunk, cache, i == 0)
            outs.append(F.conv3d(y, w_mu, b_mu))
        mu = torch.cat(outs, 2)
        return (mu - self.mean.view(1, -1, 1, 1, 1)) * self.inv_std.view(1, -1, 1, 1, 1)

    @torch.jit.export
    def init_decode_cache(self, z: Tensor) -> List[Tensor]:
        """Zero decoder cache for latents of z's batch and spatial size, + step counter."""
        b, h, w = z.shape[0], z.shape[3], z.shape[4]
        out: List[Tensor] = []
        for s in self.dec_specs:
            out.append(torch.zeros([b, s[0], s[1], h * s[2] // s[3], w * s[2] // s[3]],
                                   dtype=z.dtype, device=z.device))
        out.append(torch.zeros([1], dtype=torch.long, device=z.device))
        return out

    @torch.jit.export
    def decode_step(self, z_t: Tensor, cache: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """One normalised latent frame [B, z, 1, h, w] -> its frames in [-1, 1]
        (1 on the first step, 4 afterwards) and the updated cache (input list untouched)."""
        if z_t.shape[2] != 1:
            raise ValueError("decode_step takes one latent frame, got " + str(z_t.shape[2]))
        if len(cache) != len(self.dec_specs) + 1:
            raise ValueError("decode cache has " + str(len(cache)) + " entries, expected "
                             + str(len(self.dec_specs) + 1))
        step = cache[-1]
        first = int(step) == 0
        new_cache = cache.copy()
        x = z_t / self.inv_std.view(1, -1, 1, 1, 1) + self.mean.view(1, -1, 1, 1, 1)
        x = self.conv2(x, new_cache)
        x = self.decoder(x, new_cache, first)
        x = unpatchify(x, self.patch).clamp(-1.0, 1.0)
        new_cache[-1] = step + 1
        return x, new_cache

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        """Normalised latent [B, z, T, h, w] -> video [B, 3, 1+4(T-1), H, W] in [-1, 1]."""
        cache = self.init_decode_cache(z)
        outs: List[Tensor] = []
        for t in range(z.shape[2]):
            y, cache = self.decode_step(z[:, :, t:t + 1], cache)
            outs.append(y)
        return torch.cat(outs, 2)

    def forward(self, z: Tensor) -> Tensor:
        return self.decode(z)
