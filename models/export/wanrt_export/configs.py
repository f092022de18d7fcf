"""Architecture configurations of the Wan 2.2 components, real and tiny.

Real values follow docs/wan22.md sections 1 and 3; tiny ones keep every structural
feature (same layer kinds, strides, patching, RoPE split, bucket count) at small widths
so tests and the demo run in seconds on a CPU.
"""
from dataclasses import dataclass, field, asdict, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

# The VAEs' latent mean/std (docs/wan22.md section 5), kept in the repo so bundles build anywhere.
_STATS_CANDIDATES = [Path(__file__).resolve().parents[2] / "profiles" / "vae_latent_stats.yaml"]


def _latent_stats() -> Dict[str, Dict[str, List[float]]]:
    for p in _STATS_CANDIDATES:
        if p.is_file():
            with open(p, "r", encoding="utf-8") as f:
                return yaml.safe_load(f)
    raise FileNotFoundError("vae_latent_stats.yaml not found in " + ", ".join(map(str, _STATS_CANDIDATES)))


@dataclass
class T5Config:
    vocab_size: int = 256384
    dim: int = 4096
    dim_attn: int = 4096
    dim_ffn: int = 10240
    num_heads: int = 64
    num_layers: int = 24
    num_buckets: int = 32
    max_dist: int = 128
    eps: float = 1e-6


@dataclass
class DiTConfig:
    model_type: str = "t2v"          # t2v | i2v | ti2v
    in_dim: int = 16
    out_dim: int = 16
    dim: int = 5120
    ffn_dim: int = 13824
    num_heads: int = 40
    num_layers: int = 40
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    patch_size: Tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclass
class VAEConfig:
    version: str = "2.1"             # "2.1" (z16, stride 4x8x8) | "2.2" (z48, stride 4x16x16)
    z_dim: int = 16
    dim: int = 96                    # encoder base width (c_dim in vae2_2)
    dec_dim: int = 96                # decoder base width (2.1: same as dim; 2.2: 256)
    dim_mult: Tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: Tuple[bool, ...] = (False, True, True)
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)

    @property
    def patch(self) -> int:
        """Input space-to-channel patchify factor (2.2 only)."""
        return 2 if self.version == "2.2" else 1

    @property
    def stride(self) -> Tuple[int, int, int]:
        s = 2 ** (len(self.dim_mult) - 1) * self.patch
        return (2 ** sum(1 for t in self.temporal_downsample if t), s, s)


@dataclass
class SamplingDefaults:
    steps: int
    shift: float
    guide_scale: Tuple[float, float]   # (low-noise, high-noise); equal for single-expert models
    boundary: Optional[float]          # fraction of num_train_timesteps; None without MoE
    frames: int
    size: Tuple[int, int]              # (W, H)
    fps: int
    sampler: str = "unipc"
    num_train_timesteps: int = 1000


@dataclass
class ModelConfig:
    """Everything a bundle of one model needs: components and sampling defaults."""
    name: str
    model_id: str
    task: str                          # t2v | i2v | ti2v
    t5: T5Config
    dit: DiTConfig
    vae: VAEConfig
    experts: Tuple[str, ...]           # ("dit",) or ("dit_high_noise", "dit_low_noise")
    sampling: SamplingDefaults

    def to_dict(self) -> dict:
        return asdict(self)


NEG_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


def vae21(dim: int = 96) -> VAEConfig:
    s = _latent_stats()["wan2_1_vae"]
    return VAEConfig(version="2.1", z_dim=16, dim=dim, dec_dim=dim, mean=s["mean"], std=s["std"])


def vae22(dim: int = 160, dec_dim: int = 256) -> VAEConfig:
    s = _latent_stats()["wan2_2_vae"]
    return VAEConfig(version="2.2", z_dim=48, dim=dim, dec_dim=dec_dim, mean=s["mean"], std=s["std"])


def _real(name: str) -> ModelConfig:
    t5 = T5Config()
    if name == "ti2v-5b":
        return ModelConfig(name, "wan2.2-ti2v-5b", "ti2v", t5,
                           DiTConfig("ti2v", 48, 48, 3072, 14336, 24, 30), vae22(), ("dit",),
                           SamplingDefaults(50, 5.0, (5.0, 5.0), None, 121, (1280, 704), 24))
    if name == "t2v-a14b":
        return ModelConfig(name, "wan2.2-t2v-a14b", "t2v", t5,
                           DiTConfig("t2v", 16, 16), vae21(), ("dit_high_noise", "dit_low_noise"),
                           SamplingDefaults(40, 12.0, (3.0, 4.0), 0.875, 81, (1280, 720), 16))
    if name == "i2v-a14b":
        return ModelConfig(name, "wan2.2-i2v-a14b", "i2v", t5,
                           DiTConfig("i2v", 36, 16), vae21(), ("dit_high_noise", "dit_low_noise"),
                           SamplingDefaults(40, 5.0, (3.5, 3.5), 0.900, 81, (1280, 720), 16))
    raise KeyError(name)


# Tiny: DiT head_dim 32 keeps an exact RoPE split (12/10/10); text_dim equals the tiny T5 width.
TINY_T5 = T5Config(vocab_size=384, dim=64, dim_attn=64, dim_ffn=128, num_heads=4, num_layers=2)


def _tiny_dit(model_type: str, in_dim: int, out_dim: int) -> DiTConfig:
    return DiTConfig(model_type, in_dim, out_dim, dim=64, ffn_dim=128, num_heads=2, num_layers=2,
                     text_dim=TINY_T5.dim, text_len=32)


def _tiny(name: str) -> ModelConfig:
    if name == "tiny-ti2v":
        return ModelConfig(name, "wan2.2-ti2v-tiny", "ti2v", TINY_T5, _tiny_dit("ti2v", 48, 48),
                           vae22(dim=8, dec_dim=16), ("dit",),
                           SamplingDefaults(4, 5.0, (5.0, 5.0), None, 5, (64, 64), 24))
    if name == "tiny-t2v-moe":
        return ModelConfig(name, "wan2.2-t2v-tiny-moe", "t2v", TINY_T5, _tiny_dit("t2v", 16, 16),
                           vae21(dim=8), ("dit_high_noise", "dit_low_noise"),
                           SamplingDefaults(4, 12.0, (3.0, 4.0), 0.875, 5, (64, 64), 16))
    if name == "tiny-i2v-moe":
        return ModelConfig(name, "wan2.2-i2v-tiny-moe", "i2v", TINY_T5, _tiny_dit("i2v", 36, 16),
                           vae21(dim=8), ("dit_high_noise", "dit_low_noise"),
                           SamplingDefaults(4, 5.0, (3.5, 3.5), 0.900, 5, (64, 64), 16))
    raise KeyError(name)


# Mid-size: real head_dim (128) and text path, ~1/10 of TI2V-5B's width at a few layers;
# big enough that compute, not overhead, dominates a CPU run (benchmarks, bench/README.md).
MID_T5 = T5Config(vocab_size=384, dim=512, dim_attn=512, dim_ffn=1024, num_heads=8, num_layers=4)


def _mid(name: str) -> ModelConfig:
    if name == "mid-ti2v":
        dit = DiTConfig("ti2v", 48, 48, dim=768, ffn_dim=3072, num_heads=6, num_layers=8,
                        text_dim=MID_T5.dim, text_len=128)
        return ModelConfig(name, "wan2.2-ti2v-mid", "ti2v", MID_T5, dit, vae22(dim=32, dec_dim=64),
                           ("dit",), SamplingDefaults(10, 5.0, (5.0, 5.0), None, 17, (256, 256), 24))
    raise KeyError(name)


# Named sampling presets: sampling defaults that belong together. "lightning" is the recipe of
# the 4-step distilled Wan 2.2 LoRAs (Lightning / LightX2V); the MoE boundary stays the model's.
SAMPLING_PRESETS: Dict[str, dict] = {
    "lightning": {"sampler": "lightning", "steps": 4, "shift": 5.0, "guide_scale": (1.0, 1.0)},
}


def with_sampling_preset(cfg: ModelConfig, preset: Optional[str]) -> ModelConfig:
    """`cfg` with the sampling defaults of `preset` (None: unchanged); KeyError for an unknown one."""
    if preset is None:
        return cfg
    if preset not in SAMPLING_PRESETS:
        raise KeyError(f"unknown sampling preset '{preset}'; known: {', '.join(SAMPLING_PRESETS)}")
    return replace(cfg, sampling=replace(cfg.sampling, **SAMPLING_PRESETS[preset]))


REAL_NAMES = ("ti2v-5b", "t2v-a14b", "i2v-a14b")
TINY_NAMES = ("tiny-ti2v", "tiny-t2v-moe", "tiny-i2v-moe")
MID_NAMES = ("mid-ti2v",)


def get_config(name: str) -> ModelConfig:
    """Named configuration; raises KeyError listing the known names."""
    if name in REAL_NAMES:
        return _real(name)
    if name in TINY_NAMES:
        return _tiny(name)
    if name in MID_NAMES:
        return _mid(name)
    raise KeyError(f"unknown config '{name}'; known: {', '.join(REAL_NAMES + TINY_NAMES + MID_NAMES)}")
