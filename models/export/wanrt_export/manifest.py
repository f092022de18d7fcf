"""The bundle manifest `wanrt.yaml` (format_version 2, or 1) and the planning profiles.

A manifest describes one bundle: the architecture, sampling defaults, tokenizer and one
entry per component (file, sha256, stored dtype, sizes, keep-fp32 patterns, contract).
Format 2 keeps a component's parameters in a safetensors file beside its TorchScript file
(`weights`, `weights_sha256`); the TorchScript file then holds the code, the buffers and a
one-element placeholder per parameter that keeps its shape and dtype. Format 1 keeps
everything in the TorchScript file.
A profile (models/profiles/*.yaml) has the same schema without files and hashes and with
`profile: true`, so the planner can size a real model on a machine without its weights.

Conventions the C++ reader relies on:
- `keep_fp32` entries are fnmatch globs over state-dict names; `*` matches any run of
  characters, dots included (Python fnmatch.fnmatchcase).
- `parameters` counts parameter elements; `bytes` counts the stored bytes of every tensor
  the component holds (parameters and buffers) and equals non_block_bytes + sum(block_bytes);
  block i owns the tensors named `<blocks>.<i>.*`.
- Paths are relative to the bundle root. The yaml is plain (no tags, block style, lists
  of scalars in flow style), written with yaml.safe_dump(sort_keys=False).
"""
import fnmatch
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn
import yaml

from . import attention as attn
from .configs import NEG_PROMPT, DiTConfig, ModelConfig, SamplingDefaults, T5Config, VAEConfig

FORMAT_VERSION = 2
FORMAT_VERSIONS = (1, 2)
# Profiles describe sizes only; their schema is the same in both formats.
PROFILE_FORMAT_VERSION = 1
DTYPES: Dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
TOKENIZER_FILE = "tokenizer/spiece.model"
EXPERT_OF = {"dit_high_noise": "high_noise", "dit_low_noise": "low_noise"}

STAGED_METHODS = ["forward", "prologue", "epilogue"]
VAE_METHODS = ["forward", "encode", "decode", "init_decode_cache", "decode_step"]
STAGED_INPUTS = {"text_encoder": ["ids", "mask"], "dit": ["x", "t", "context"]}


def component_names(cfg: ModelConfig) -> List[str]:
    """Components of a bundle in export order: text_encoder, the DiT expert(s), vae."""
    return ["text_encoder", *cfg.experts, "vae"]


def component_file(component: str) -> str:
    return f"{component}.pt"


def weights_file(component: str) -> str:
    """Format 2: the safetensors file holding a component's parameters."""
    return f"{component}.safetensors"


def is_kept(name: str, patterns: Iterable[str]) -> bool:
    """Whether state-dict name `name` matches one of the keep-fp32 globs."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def cast_parameters_(module: nn.Module, dtype: torch.dtype, keep: Iterable[str]) -> nn.Module:
    """Cast floating parameters to `dtype` in place, those matching `keep` to fp32.

    Buffers are left as built: they hold derived constants whose precision the module chose.
    """
    keep = list(keep)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.is_floating_point():
                want = torch.float32 if is_kept(name, keep) else dtype
                if p.dtype != want:
                    p.data = p.data.to(want)
    return module


def _tensors(module: nn.Module) -> List[Tuple[str, torch.Tensor]]:
    seen, out = set(), []
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


def tensor_nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def size_stats(module: nn.Module, blocks_attr: Optional[str] = "blocks") -> dict:
    """parameters, bytes, non_block_bytes and block_bytes of a module (meta tensors work)."""
    num_blocks = len(getattr(module, blocks_attr)) if blocks_attr else 0
    block_bytes = [0] * num_blocks
    non_block = 0
    prefix = f"{blocks_attr}." if blocks_attr else None
    for name, t in _tensors(module):
        n = tensor_nbytes(t)
        if prefix and name.startswith(prefix):
            block_bytes[int(name[len(prefix):].split(".", 1)[0])] += n
        else:
            non_block += n
    params = sum(p.numel() for p in module.parameters())
    return {"parameters": int(params), "bytes": int(non_block + sum(block_bytes)),
            "non_block_bytes": int(non_block), "block_bytes": [int(b) for b in block_bytes]}


def contract(component: str, module: nn.Module) -> dict:
    """The method contract recorded for a component."""
    if component == "vae":
        return {"kind": "vae", "methods": list(VAE_METHODS)}
    base = "dit" if component.startswith("dit") else component
    return {"kind": "staged", "methods": list(STAGED_METHODS), "blocks": "blocks",
            "num_blocks": len(module.blocks), "inputs": list(STAGED_INPUTS[base])}


def component_entry(component: str, module: nn.Module, dtype: str, keep: List[str],
                    file: Optional[str] = None, sha256: Optional[str] = None,
                    weights: Optional[str] = None, weights_sha256: Optional[str] = None) -> dict:
    """Manifest entry of one component; file/sha256 are omitted for profiles, weights and
    weights_sha256 for format 1."""
    entry: dict = {}
    if file is not None:
        entry["file"] = file
    if sha256 is not None:
        entry["sha256"] = sha256
    if weights is not None:
        entry["weights"] = weights
    if weights_sha256 is not None:
        entry["weights_sha256"] = weights_sha256
    if component in EXPERT_OF:
        entry["expert"] = EXPERT_OF[component]
    entry["dtype"] = dtype
    entry.update(size_stats(module, None if component == "vae" else "blocks"))
    entry["keep_fp32"] = list(keep)
    entry["contract"] = contract(component, module)
    return entry


def architecture(cfg: ModelConfig) -> dict:
    t5 = asdict(cfg.t5)
    dit = asdict(cfg.dit)
    dit["patch_size"] = [int(p) for p in cfg.dit.patch_size]
    dit["head_dim"] = cfg.dit.head_dim
    v = cfg.vae
    vae = {"version": v.version, "z_dim": v.z_dim, "dim": v.dim, "dec_dim": v.dec_dim,
           "dim_mult": [int(m) for m in v.dim_mult], "num_res_blocks": v.num_res_blocks,
           "temporal_downsample": [bool(b) for b in v.temporal_downsample],
           "stride": [int(s) for s in v.stride], "patch": v.patch,
           "mean": [float(m) for m in v.mean], "std": [float(s) for s in v.std]}
    return {"text_encoder": t5, "dit": dit, "vae": vae}


def sampling(cfg: ModelConfig) -> dict:
    s = cfg.sampling
    return {"steps": s.steps, "shift": float(s.shift), "guide_scale": [float(g) for g in s.guide_scale],
            "boundary": None if s.boundary is None else float(s.boundary), "frames": s.frames,
            "size": [int(x) for x in s.size], "fps": s.fps, "sampler": s.sampler,
            "num_train_timesteps": s.num_train_timesteps, "negative_prompt": NEG_PROMPT}


def config_from_manifest(doc: dict) -> ModelConfig:
    """The ModelConfig a manifest (or profile) describes: the inverse of architecture() and
    sampling(), so a bundle of any size (e.g. a small checkpoint exported under a real name)
    rebuilds the modules it holds rather than the named configuration's."""
    arch, samp = doc["architecture"], doc["sampling"]
    t5 = T5Config(**arch["text_encoder"])
    dit_fields = {k: v for k, v in arch["dit"].items() if k != "head_dim"}
    dit_fields["patch_size"] = tuple(dit_fields["patch_size"])
    dit = DiTConfig(**dit_fields)
    v = arch["vae"]
    vae = VAEConfig(version=str(v["version"]), z_dim=v["z_dim"], dim=v["dim"], dec_dim=v["dec_dim"],
                    dim_mult=tuple(v["dim_mult"]), num_res_blocks=v["num_res_blocks"],
                    temporal_downsample=tuple(v["temporal_downsample"]),
                    mean=list(v["mean"]), std=list(v["std"]))
    experts = tuple(c for c in doc["components"] if c.startswith("dit"))
    sampling_defaults = SamplingDefaults(
        steps=samp["steps"], shift=samp["shift"], guide_scale=tuple(samp["guide_scale"]),
        boundary=samp["boundary"], frames=samp["frames"], size=tuple(samp["size"]), fps=samp["fps"],
        sampler=samp.get("sampler", "unipc"), num_train_timesteps=samp.get("num_train_timesteps", 1000))
    return ModelConfig(doc["config_name"], doc["model_id"], doc["task"], t5, dit, vae, experts,
                       sampling_defaults)


def tokenizer_entry(cfg: ModelConfig, sha256: Optional[str] = None, profile: bool = False) -> dict:
    entry: dict = {"type": "sentencepiece"}
    if not profile:
        entry["file"] = TOKENIZER_FILE
        entry["sha256"] = sha256
    entry.update({"text_len": cfg.dit.text_len, "pad_id": 0, "eos_id": 1, "unk_id": 2, "clean": "whitespace"})
    return entry


def build_manifest(cfg: ModelConfig, components: Dict[str, dict], tokenizer: dict,
                   profile: bool = False, attention: Optional[str] = None,
                   format_version: int = FORMAT_VERSION) -> dict:
    """The whole manifest (or profile) dict in schema order; `attention` is what the scripted
    modules use (default: the current attention.mode())."""
    missing = [c for c in component_names(cfg) if c not in components]
    if missing:
        raise ValueError(f"manifest for {cfg.name}: missing components {missing}")
    doc: dict = {"format_version": PROFILE_FORMAT_VERSION if profile else format_version}
    if profile:
        doc["profile"] = True
    doc.update({"model_id": cfg.model_id, "config_name": cfg.name, "task": cfg.task})
    if not profile:
        # The attention the scripted modules bake in (attention.py). Profiles leave it to the
        # planner.
        doc["attention"] = attention or attn.mode()
    doc.update({"architecture": architecture(cfg), "sampling": sampling(cfg), "tokenizer": tokenizer,
                "components": {c: components[c] for c in component_names(cfg)}})
    return doc


class _PlainDumper(yaml.SafeDumper):
    """SafeDumper that writes lists of scalars in flow style and everything else in block style."""

    def represent_sequence(self, tag, sequence, flow_style=None):
        flat = all(not isinstance(x, (list, tuple, dict)) for x in sequence)
        return super().represent_sequence(tag, sequence, flow_style=flat)


_PlainDumper.add_representer(tuple, lambda d, t: d.represent_list(list(t)))


def dump_yaml(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=1 << 30)


def write_yaml(doc: dict, path: Path) -> None:
    Path(path).write_text(dump_yaml(doc), encoding="utf-8")


def read_yaml(path: Path) -> dict:
    with open(path, "r", encoding="utf-8") as f:
        return yaml.safe_load(f)


def profile_file_name(cfg: ModelConfig) -> str:
    return f"{cfg.model_id}.yaml"
