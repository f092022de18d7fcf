"""Wan 2.1 VAE (z 16, stride 4x8x8), as used by the A14B T2V/I2V models.

Parameter names equal the official `WanVAE_` state dict (encoder.*, conv1.*, conv2.*,
decoder.*). Encoder: per level `num_res_blocks` ResidualBlocks then a spatial (and, per
`temporal_downsample`, temporal) downsample; middle Res/Attention/Res; RMS/SiLU/conv head.
Decoder mirrors it with `num_res_blocks + 1` ResidualBlocks per level; its Resample halves
the width, so levels after the first start at half the previous width. The cache layout
and the encode/decode API are described in `vae_common`.
"""
from typing import List

import torch.nn as nn

from .vae_common import (CacheRegistry, CausalConv3d, CausalDecoder, CausalEncoder, Resample,
                         ResidualBlock, WanVAEBase, middle_blocks, output_head)


class Encoder21(CausalEncoder):
    """Causal encoder: [B, 3, t, H, W] chunk -> [B, 2*z, t', H/8, W/8]."""

    def __init__(self, dim: int, z2: int, dim_mult, num_res_blocks: int, temporal_down,
                 reg: CacheRegistry, in_channels: int = 3, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        dims = [dim * u for u in [1] + list(dim_mult)]
        den = 1
        self.conv1 = CausalConv3d(in_channels, dims[0], 3, padding=1, reg=reg, scale=(1, den), **kw)
        layers: List[nn.Module] = []
        out_dim = dims[0]
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            for _ in range(num_res_blocks):
                layers.append(ResidualBlock(in_dim, out_dim, reg, (1, den), **kw))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, out_dim, up=False, temporal=bool(temporal_down[i]),
                                       reg=reg, scale=(1, den), **kw))
                den *= 2
        self.downsamples = nn.ModuleList(layers)
        self.middle = middle_blocks(out_dim, reg, (1, den), **kw)
        self.head = output_head(out_dim, z2, reg, (1, den), **kw)


class Decoder21(CausalDecoder):
    """Causal decoder: one latent frame [B, z, 1, h, w] -> [B, 3, 1 or 4, 8h, 8w]."""

    def __init__(self, dim: int, z_dim: int, dim_mult, num_res_blocks: int, temporal_up,
                 reg: CacheRegistry, out_channels: int = 3, device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        dims = [dim * u for u in [dim_mult[-1]] + list(dim_mult)[::-1]]
        num = 1
        self.conv1 = CausalConv3d(z_dim, dims[0], 3, padding=1, reg=reg, scale=(num, 1), **kw)
        self.middle = middle_blocks(dims[0], reg, (num, 1), **kw)
        layers: List[nn.Module] = []
        out_dim = dims[0]
        for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
            if i > 0:
                in_dim = in_dim // 2  # the previous level's Resample halved the width
            for _ in range(num_res_blocks + 1):
                layers.append(ResidualBlock(in_dim, out_dim, reg, (num, 1), **kw))
                in_dim = out_dim
            if i != len(dim_mult) - 1:
                layers.append(Resample(out_dim, out_dim // 2, up=True,
                                       temporal=bool(temporal_up[i]), reg=reg, scale=(num, 1),
                                       **kw))
                num *= 2
        self.upsamples = nn.ModuleList(layers)
        self.head = output_head(out_dim, out_channels, reg, (num, 1), **kw)


class WanVAE21(WanVAEBase):
    """Wan 2.1 VAE; API (encode / decode / init_decode_cache / decode_step) in WanVAEBase."""

    def __init__(self, cfg, device=None, dtype=None):
        if cfg.version != "2.1":
            raise ValueError(f"WanVAE21 needs a version '2.1' VAEConfig, got '{cfg.version}'")
        enc_reg, dec_reg = CacheRegistry(), CacheRegistry()
        tdown = list(cfg.temporal_downsample)
        encoder = Encoder21(cfg.dim, cfg.z_dim * 2, cfg.dim_mult, cfg.num_res_blocks, tdown,
                            enc_reg, device=device, dtype=dtype)
        decoder = Decoder21(cfg.dec_dim, cfg.z_dim, cfg.dim_mult, cfg.num_res_blocks, tdown[::-1],
                            dec_reg, device=device, dtype=dtype)
        super().__init__(cfg, encoder, decoder, enc_reg.specs, dec_reg.specs, device, dtype)
