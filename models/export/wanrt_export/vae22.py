"""Wan 2.2 VAE (z 48, stride 4x16x16), as used by TI2V-5B.

Differences from 2.1 (see `vae21`): the video is patchified 2x2 into 12 channels first and
the decoder emits 12 channels that are unpatchified; encoder levels are
`DownResidualBlock`s (residual stack + Resample, plus a parameter-free `AvgDown3D`
shortcut) and decoder levels are `UpResidualBlock`s (`num_res_blocks + 1` residual blocks +
Resample, plus a parameter-free `DupUp3D` shortcut on levels that upsample); the Resample
keeps the width; the decoder has its own base width `dec_dim`. On the first decode step
`DupUp3D` drops its first `factor_t - 1` frames, matching the skipped temporal upsample.
Parameter names equal the official `WanVAE_` state dict; cache layout in `vae_common`.
"""
from typing import List, Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .vae_common import (CacheRegistry, CausalConv3d, CausalDecoder, CausalEncoder, Resample,
                         ResidualBlock, WanVAEBase, middle_blocks, output_head)


class AvgDown3D(nn.Module):
    """Space/time-to-channel by (ft, fs, fs), then mean over groups of channels.

    Input frames are front-padded with zeros to a multiple of ft (a 1-frame first chunk is
    averaged with a zero frame, as in the official code).
    """

    def __init__(self, in_channels: int, out_channels: int, factor_t: int, factor_s: int):
        super().__init__()
        self.out_channels = out_channels
        self.factor_t = factor_t
        self.factor_s = factor_s
        factor = factor_t * factor_s * factor_s
        if (in_channels * factor) % out_channels != 0:
            raise ValueError("AvgDown3D: in_channels * factor must divide by out_channels")
        self.group_size = in_channels * factor // out_channels

    def forward(self, x: Tensor) -> Tensor:
        ft, fs = self.factor_t, self.factor_s
        pad_t = (ft - x.shape[2] % ft) % ft
        if pad_t > 0:
            x = F.pad(x, [0, 0, 0, 0, pad_t, 0])
        b, c, t, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
        x = x.reshape(b, c, t // ft, ft, h // fs, fs, w // fs, fs).permute(0, 1, 3, 5, 7, 2, 4, 6)
        x = x.reshape(b, self.out_channels, self.group_size, t // ft, h // fs, w // fs)
        return x.mean(dim=2)


class DupUp3D(nn.Module):
    """Repeat channels, then channel-to-space/time by (ft, fs, fs)."""

    def __init__(self, in_channels: int, out_channels: int, factor_t: int, factor_s: int):
        super().__init__()
        self.out_channels = out_channels
        self.factor_t = factor_t
        self.factor_s = factor_s
        factor = factor_t * factor_s * factor_s
        if (out_channels * factor) % in_channels != 0:
            raise ValueError("DupUp3D: out_channels * factor must divide by in_channels")
        self.repeats = out_channels * factor // in_channels

    def forward(self, x: Tensor, first: bool) -> Tensor:
        ft, fs = self.factor_t, self.factor_s
        b, t, h, w = x.shape[0], x.shape[2], x.shape[3], x.shape[4]
        x = x.repeat_interleave(self.repeats, dim=1)
        x = x.reshape(b, self.out_channels, ft, fs, fs, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
        x = x.reshape(b, self.out_channels, t * ft, h * fs, w * fs)
        if first:
            x = x[:, :, ft - 1:]
        return x


class DownResidualBlock(nn.Module):
    """`mult` ResidualBlocks (+ downsample Resample) plus an AvgDown3D shortcut."""

    def __init__(self, in_dim: int, out_dim: int, mult: int, temporal: bool, down: bool,
                 reg: CacheRegistry, den: int, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.avg_shortcut = AvgDown3D(in_dim, out_dim, 2 if temporal else 1, 2 if down else 1)
        layers: List[nn.Module] = []
        for _ in range(mult):
            layers.append(ResidualBlock(in_dim, out_dim, reg, (1, den), **kw))
            in_dim = out_dim
        if down:
            layers.append(Resample(out_dim, out_dim, up=False, temporal=temporal, reg=reg,
                                   scale=(1, den), **kw))
        self.downsamples = nn.ModuleList(layers)

    def forward(self, x: Tensor, cache: List[Tensor], first: bool) -> Tensor:
        y = x
        for layer in self.downsamples:
            y = layer(y, cache, first)
        return y + self.avg_shortcut(x)


class UpResidualBlock(nn.Module):
    """`mult` ResidualBlocks (+ upsample Resample) plus a DupUp3D shortcut when upsampling."""

    def __init__(self, in_dim: int, out_dim: int, mult: int, temporal: bool, up: bool,
                 reg: CacheRegistry, num: int, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.avg_shortcut: Optional[DupUp3D] = (
            DupUp3D(in_dim, out_dim, 2 if temporal else 1, 2) if up else None)
        layers: List[nn.Module] = []
        for _ in range(mult):
            layers.append(ResidualBlock(in_dim, out_dim, reg, (num, 1), **kw))
            in_dim = out_dim
        if up:
            layers.append(Resample(out_dim, out_dim, up=True, temporal=temporal, reg=reg,
                                   scale=(num, 1), **kw))
        self.upsamples = nn.ModuleList(layers)

    def forward(self, x: Tensor, cache: List[Tensor], first: bool) -> Tensor:
        y = x
        for layer in self.upsamples:
            y = layer(y, cache, first)
        sc = self.avg_shortcut
        if sc is not None:
            y = y + sc(x, first)
        return y


class Encoder22(CausalEncoder):
    """Causal encoder: patchified [B, 12, t, H/2, W/2] chunk -> [B, 2*z, t', H/16, W/16]."""

    def __init__(self, dim: int, z2: int, dim_mult, num_res_blocks: int, temporal_down,
                 reg: CacheRegistry, in_channels: int = 12, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        dims = [dim * u for u in [1] + list(dim_mult)]
        den = 1
        self.conv1 = CausalConv3d(in_channels, dims[0], 3, padding=1, reg=reg, scale=(1, den), **kw)
        blocks: List[nn.Module] = []
        out_dim = dims[0]
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            temporal = bool(temporal_down[i]) if i < len(temporal_down) else False
            down = i != len(dim_mult) - 1
            blocks.append(DownResidualBlock(in_dim, out_dim, num_res_blocks, temporal, down,
                                            reg, den, **kw))
            if down:
                den *= 2
        self.downsamples = nn.ModuleList(blocks)
        self.middle = middle_blocks(out_dim, reg, (1, den), **kw)
        self.head = output_head(out_dim, z2, reg, (1, den), **kw)


class Decoder22(CausalDecoder):
    """Causal decoder: one latent frame [B, z, 1, h, w] -> [B, 12, 1 or 4, 8h, 8w]."""

    def __init__(self, dim: int, z_dim: int, dim_mult, num_res_blocks: int, temporal_up,
                 reg: CacheRegistry, out_channels: int = 12, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        dims = [dim * u for u in [dim_mult[-1]] + list(dim_mult)[::-1]]
        num = 1
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1, reg=reg, scale=(num, 1), **kw)
        self.middle = middle_blocks(dims[0], reg, (num, 1), **kw)
        blocks: List[nn.Module] = []
        out_dim = dims[0]
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            temporal = bool(temporal_up[i]) if i < len(temporal_up) else False
            up = i != len(dim_mult) - 1
            blocks.append(UpResidualBlock(in_dim, out_dim, num_res_blocks + 1, temporal, up,
                                          reg, num, **kw))
            if up:
                num *= 2
        self.upsamples = nn.ModuleList(blocks)
        self.head = output_head(out_dim, out_channels, reg, (num, 1), **kw)


class WanVAE22(WanVAEBase):
    """Wan 2.2 VAE; API (encode / decode / init_decode_cache / decode_step) in WanVAEBase."""

    def __init__(self, cfg, device=None, dtype=None):
        if cfg.version != "2.2":
            raise ValueError(f"WanVAE22 needs a version '2.2' VAEConfig, got '{cfg.version}'")
        enc_reg, dec_reg = CacheRegistry(), CacheRegistry()
        tdown = list(cfg.temporal_downsample)
        pp = cfg.patch * cfg.patch
        encoder = Encoder22(cfg.dim, cfg.z_dim * 2, cfg.dim_mult, cfg.num_res_blocks, tdown,
                            enc_reg, in_channels=3 * pp, device=device, dtype=dtype)
        decoder = Decoder22(cfg.dec_dim, cfg.z_dim, cfg.dim_mult, cfg.num_res_blocks, tdown[::-1],
                            dec_reg, out_channels=3 * pp, device=device, dtype=dtype)
        super().__init__(cfg, encoder, decoder, enc_reg.specs, dec_reg.specs, device, dtype)
