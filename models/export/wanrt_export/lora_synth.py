"""Synthetic LoRA files for tests: deterministic low-rank deltas in any layout lora.py reads.

``synth_lora(shapes, layout, rank, alpha, seed)`` draws, from one float32 CPU generator seeded
with `seed`, for each target in order (``default_targets``: every block's self_attn q/k/v/o,
cross_attn q/k/v/o, ffn.0, ffn.2, then patch_embedding in the official layouts):
``down ~ N(0, 1) / sqrt(fan_in)`` [rank, in...] and
``up ~ N(0, 1) * 0.25 / sqrt(rank) * rank / alpha`` [out, rank, 1...], so the merged delta has
about a quarter of the random weights' scale (N / sqrt(fan_in)) whatever the rank and alpha.
The "official" layout then adds full deltas: ``blocks.N.norm3.diff`` (0.05 N),
``blocks.N.ffn.2.diff_b`` (0.02 N) and ``blocks.N.modulation.diff`` (0.02 N).

Layouts: "official" (``diffusion_model.`` + lora_down/lora_up + alpha), "official-noalpha"
(the same without alpha), "peft" (``diffusion_model.`` + lora_A/lora_B + alpha), "peft-bare"
(lora_A/lora_B, no prefix, no alpha), "diffusers" (``transformer.`` + diffusers names +
lora_A/lora_B, no alpha). Without an alpha key a file's alpha is its rank; `alpha` is then only
used to scale the drawn values.
"""
import math
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from . import safetensors_io as st
from .lora import Shapes, wan_to_diffusers

PathLike = Union[str, Path]
LAYOUTS = ("official", "official-noalpha", "peft", "peft-bare", "diffusers")
BLOCK_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                 "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
# Relative size of the merged delta against the random weights' N / sqrt(fan_in).
DELTA_SCALE = 0.25
META_LAYOUT = "wanrt_lora_layout"


def num_blocks(shapes: Shapes) -> int:
    """1 + the largest N of the `blocks.N.` parameters."""
    found = [int(m.group(1)) for k in shapes for m in [re.match(r"^blocks\.(\d+)\.", k)] if m]
    return max(found) + 1 if found else 0


def default_targets(shapes: Shapes, layout: str) -> List[str]:
    """The module names a synthetic LoRA covers by default (module docstring)."""
    out = [f"blocks.{i}.{t}" for i in range(num_blocks(shapes)) for t in BLOCK_TARGETS]
    if layout.startswith("official"):
        out.append("patch_embedding")
    return [t for t in out if f"{t}.weight" in shapes]


def draw_pairs(shapes: Shapes, targets: Sequence[str], rank: int, alpha: float,
               seed: int) -> Dict[str, Tuple[Tensor, Tensor]]:
    """module -> (up, down) float32, drawn in `targets` order from one generator."""
    g = torch.Generator().manual_seed(int(seed))
    out = {}
    for module in targets:
        shape = tuple(shapes[f"{module}.weight"])
        if len(shape) < 2:
            raise ValueError(f"'{module}.weight' {list(shape)} is not a matrix or a convolution")
        fan_in = math.prod(shape[1:])
        down = torch.randn((rank,) + tuple(shape[1:]), generator=g, dtype=torch.float32)
        down = down / math.sqrt(fan_in)
        up = torch.randn((shape[0], rank) + (1,) * (len(shape) - 2), generator=g, dtype=torch.float32)
        up = up * (DELTA_SCALE / math.sqrt(rank) * rank / alpha)
        out[module] = (up, down)
    return out


def draw_diffs(shapes: Shapes, seed: int) -> Dict[str, Tensor]:
    """Full deltas "<param>.diff"-style: param name -> tensor (norm3.weight, ffn.2.bias,
    modulation of every block), from a generator of its own (seed + 1)."""
    g = torch.Generator().manual_seed(int(seed) + 1)
    out = {}
    for i in range(num_blocks(shapes)):
        for name, std in ((f"blocks.{i}.norm3.weight", 0.05), (f"blocks.{i}.ffn.2.bias", 0.02),
                          (f"blocks.{i}.modulation", 0.02)):
            if name in shapes:
                out[name] = torch.randn(tuple(shapes[name]), generator=g, dtype=torch.float32) * std
    return out


def encode(pairs: Dict[str, Tuple[Tensor, Tensor]], layout: str, alpha: Optional[float] = None,
           diffs: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
    """The file's tensors for `pairs` (module -> (up, down)) and `diffs` (param -> delta) in
    `layout`; alpha is written (float32 scalar) where the layout carries one and it is given."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown LoRA layout '{layout}'; known: {', '.join(LAYOUTS)}")
    prefix = {"official": "diffusion_model.", "official-noalpha": "diffusion_model.",
              "peft": "diffusion_model.", "peft-bare": "", "diffusers": "transformer."}[layout]
    down_key, up_key = ((".lora_down.weight", ".lora_up.weight") if layout.startswith("official")
                        else (".lora_A.weight", ".lora_B.weight"))
    with_alpha = layout in ("official", "peft") and alpha is not None

    def name(module: str) -> str:
        if layout != "diffusers":
            return prefix + module
        theirs = wan_to_diffusers(module)
        if theirs is None:
            raise ValueError(f"module '{module}' has no diffusers name")
        return prefix + theirs

    out: Dict[str, Tensor] = {}
    for module, (up, down) in pairs.items():
        out[name(module) + down_key] = down.contiguous()
        out[name(module) + up_key] = up.contiguous()
        if with_alpha:
            out[name(module) + ".alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
    for param, delta in (diffs or {}).items():
        if param.endswith(".bias"):
            out[name(param[:-len(".bias")]) + ".diff_b"] = delta.contiguous()
        elif param.endswith(".weight"):
            out[name(param[:-len(".weight")]) + ".diff"] = delta.contiguous()
        else:
            out[name(param) + ".diff"] = delta.contiguous()
    return out


def synth_lora(shapes: Shapes, layout: str = "official", rank: int = 4, alpha: Optional[float] = None,
               seed: int = 0, targets: Optional[Sequence[str]] = None,
               with_diffs: Optional[bool] = None) -> Dict[str, Tensor]:
    """A synthetic LoRA's tensors (module docstring). alpha defaults to rank / 2 in the layouts
    that carry one (so alpha/rank is exercised) and to rank otherwise."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown LoRA layout '{layout}'; known: {', '.join(LAYOUTS)}")
    rank = int(rank)
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    carries = layout in ("official", "peft")
    if alpha is None:
        alpha = rank / 2.0 if carries else float(rank)
    if float(alpha) <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    effective = float(alpha) if carries else float(rank)
    targets = list(targets) if targets is not None else default_targets(shapes, layout)
    missing = [t for t in targets if f"{t}.weight" not in shapes]
    if missing:
        raise ValueError(f"targets without a weight in the model: {missing[:5]}")
    pairs = draw_pairs(shapes, targets, rank, effective, seed)
    diffs = draw_diffs(shapes, seed) if (layout == "official" if with_diffs is None else with_diffs) else None
    return encode(pairs, layout, effective if carries else None, diffs)


def write_lora(tensors: Dict[str, Tensor], path: PathLike, layout: str = "") -> Path:
    """Save a LoRA's tensors as safetensors (atomically: a temporary file, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    st.save_file(tensors, tmp, metadata={META_LAYOUT: layout} if layout else None)
    tmp.replace(path)
    return path


def bundle_shapes(bundle_dir: PathLike, component: str = "dit") -> Shapes:
    """Parameter name -> shape of a bundle component (the weights file's header in format 2,
    the TorchScript module's parameters in format 1)."""
    from . import manifest as mf
    from . import weights as wt
    root = Path(bundle_dir)
    doc = mf.read_yaml(root / "wanrt.yaml")
    comps = doc.get("components", {})
    if component not in comps:
        raise ValueError(f"{root}: no component '{component}' (has {', '.join(comps)})")
    entry = comps[component]
    if entry.get("weights"):
        with st.SafetensorsFile(root / entry["weights"]) as f:
            return {k: tuple(i.shape) for k, i in f.infos.items()}
    return {k: tuple(p.shape) for k, p in wt.load_component(root, entry).named_parameters()}


def write_synth_lora(path: PathLike, shapes: Shapes, layout: str = "official", rank: int = 4,
                     alpha: Optional[float] = None, seed: int = 0,
                     targets: Optional[Sequence[str]] = None,
                     extra: Optional[Dict[str, Tensor]] = None,
                     dtype: torch.dtype = torch.float32) -> Path:
    """synth_lora(...) (plus `extra` tensors, e.g. keys that match nothing) written to `path`,
    its tensors stored in `dtype` (bf16 like the published Lightning files; alpha stays float32)."""
    tensors = synth_lora(shapes, layout, rank, alpha, seed, targets)
    if dtype != torch.float32:
        tensors = {k: v if k.endswith(".alpha") else v.to(dtype) for k, v in tensors.items()}
    tensors.update(extra or {})
    return write_lora(tensors, path, layout)


# ---------------------------------------------------------------------------------------------
# The test fixtures written by `tiny-bundles` (OUT/loras/)

FIXTURE_RANK = 4
# file name -> (bundle, component, layout, seed)
FIXTURES = {
    "ti2v-official.safetensors": ("tiny-ti2v", "dit", "official", 1),
    "ti2v-peft.safetensors": ("tiny-ti2v", "dit", "peft", 2),
    "ti2v-peft-bare.safetensors": ("tiny-ti2v", "dit", "peft-bare", 3),
    "ti2v-diffusers.safetensors": ("tiny-ti2v", "dit", "diffusers", 4),
    "t2v-moe-high.safetensors": ("tiny-t2v-moe", "dit_high_noise", "official", 5),
    "t2v-moe-low.safetensors": ("tiny-t2v-moe", "dit_low_noise", "official", 6),
    "partial.safetensors": ("tiny-ti2v", "dit", "official", 8),
}
OTHER_FAMILY = "other-family.safetensors"   # official layout for a tiny-ti2v DiT of width 96
UNMATCHED_KEYS = ("diffusion_model.blocks.0.not_a_module.lora_down.weight",
                  "diffusion_model.blocks.0.not_a_module.lora_up.weight")


def other_family_shapes() -> Shapes:
    """tiny-ti2v's DiT parameter shapes at dim 96 (3 heads of 32): names fit, shapes do not."""
    from dataclasses import replace
    from .configs import get_config
    from .dit import WanModel
    dit = replace(get_config("tiny-ti2v").dit, dim=96, num_heads=3)
    return {n: tuple(p.shape) for n, p in WanModel(dit, device="meta").named_parameters()}


def write_fixture_loras(bundles_dir: PathLike, out_dir: PathLike) -> List[Path]:
    """The LoRA fixtures of the C++ tests, for the tiny bundles in `bundles_dir` (FIXTURES,
    OTHER_FAMILY; partial.safetensors adds UNMATCHED_KEYS)."""
    bundles_dir, out_dir = Path(bundles_dir), Path(out_dir)
    written = []
    for fname, (bundle, comp, layout, seed) in FIXTURES.items():
        shapes = bundle_shapes(bundles_dir / bundle, comp)
        extra = None
        if fname == "partial.safetensors":
            g = torch.Generator().manual_seed(seed + 100)
            dim = shapes["blocks.0.self_attn.q.weight"][1]
            extra = {UNMATCHED_KEYS[0]: torch.randn(FIXTURE_RANK, dim, generator=g) * 0.1,
                     UNMATCHED_KEYS[1]: torch.randn(dim, FIXTURE_RANK, generator=g) * 0.1}
        written.append(write_synth_lora(out_dir / fname, shapes, layout, FIXTURE_RANK, None, seed,
                                        extra=extra))
    written.append(write_synth_lora(out_dir / OTHER_FAMILY, other_family_shapes(), "official",
                                    FIXTURE_RANK, None, 7))
    return written
