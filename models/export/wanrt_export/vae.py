"""Factory for the Wan VAEs: `build_vae(cfg)` picks the 2.1 or 2.2 module from cfg.version.

Both modules share one API (see `vae_common.WanVAEBase`): encode(video), decode(z),
init_decode_cache(z), decode_step(z_t, cache), forward(z) = decode(z). The VAE runs in fp32
(the official code never casts it); `keep_fp32_patterns()` is re-exported from here.
"""
from typing import Union

from .vae_common import keep_fp32_patterns
from .vae21 import WanVAE21
from .vae22 import WanVAE22

__all__ = ["build_vae", "keep_fp32_patterns", "WanVAE21", "WanVAE22"]


def build_vae(cfg, device=None, dtype=None) -> Union[WanVAE21, WanVAE22]:
    """The VAE module for a VAEConfig ('2.1' -> WanVAE21, '2.2' -> WanVAE22)."""
    if cfg.version == "2.1":
        return WanVAE21(cfg, device=device, dtype=dtype)
    if cfg.version == "2.2":
        return WanVAE22(cfg, device=device, dtype=dtype)
    raise ValueError(f"unknown VAE version '{cfg.version}' (expected '2.1' or '2.2')")
