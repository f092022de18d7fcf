"""Loader for official Wan 2.2 checkpoint directories (docs/wan22.md section 9).

    <ckpt>/google/umt5-xxl/spiece.model           tokenizer (other tokenizer files unused)
    <ckpt>/models_t5_umt5-xxl-enc-bf16.pth         umT5 encoder state dict (torch.save)
    <ckpt>/Wan2.2_VAE.pth | Wan2.1_VAE.pth         VAE state dict (torch.save; ti2v | A14B)
    ti2v-5b: <ckpt>/{config.json, diffusion_pytorch_model*.safetensors[, .index.json]}
    A14B:    <ckpt>/{high_noise_model,low_noise_model}/{the same}

Where each configuration comes from:
- DiT: the diffusers-style config.json (dim, ffn_dim, in_dim, out_dim, num_heads,
  num_layers, model_type, freq_dim, eps, text_len). text_dim and patch_size are not in it
  (ignore_for_config upstream); they are read from the shapes of text_embedding.0.weight and
  patch_embedding.weight.
- umT5 (no config file upstream): vocab_size and dim from token_embedding.weight
  [vocab, dim]; num_layers from the block indices; dim_attn from attn.q.weight; dim_ffn from
  ffn.fc1.weight; num_buckets and num_heads from pos_embedding.embedding.weight
  [buckets, heads]. max_dist (128) and eps (1e-6) are the only fixed values.
- VAE (no config file upstream): version from encoder.conv1.weight's input channels (3 for
  2.1, 12 = 3 x 2 x 2 for the patchified 2.2); dim from its output channels; z_dim from
  conv2.weight; dec_dim from decoder.head.0.gamma. dim_mult, num_res_blocks, the temporal
  downsampling and the latent mean/std come from the named model.
- The named model selects the sampling defaults, the experts and the VAE version.

A configuration that differs from the named real model is refused unless
allow_nonstandard=True (the tests export tiny checkpoints that way); the bundle's model_id
then gets a `-nonstandard` suffix.

Loading is strict: every parameter of our modules must be present with its exact shape and
nothing else may be in the files; all problems are collected and reported together.
"""
import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from . import manifest as mf
from .configs import DiTConfig, ModelConfig, T5Config, VAEConfig, get_config, REAL_NAMES
from .export import allocate_module, build_module
from .safetensors_io import SafetensorsError, SafetensorsFile, ShardedSafetensors

T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
VAE_FILES = {"2.1": "Wan2.1_VAE.pth", "2.2": "Wan2.2_VAE.pth"}
TOKENIZER_PATH = "google/umt5-xxl/spiece.model"
DIT_PREFIX = "diffusion_pytorch_model"
EXPERT_DIRS = {"dit_high_noise": "high_noise_model", "dit_low_noise": "low_noise_model"}
MAX_REPORTED = 10
_REQUIRED_DIT_KEYS = ("dim", "ffn_dim", "in_dim", "out_dim", "num_heads", "num_layers", "model_type")


class CheckpointError(ValueError):
    """The checkpoint directory does not match the official layout or our modules."""


@dataclasses.dataclass
class OfficialCheckpoint:
    """A validated checkpoint: configuration, tokenizer and one factory per component.

    Each factory builds its module with the stored dtype of the export and fills it from the
    files; it can be called once (the T5/VAE state dicts are released afterwards).
    """
    cfg: ModelConfig
    tokenizer: Path
    modules: Dict[str, Callable[[], nn.Module]]
    standard: bool


def _fmt_shape(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _raise_problems(problems: List[str]) -> None:
    if problems:
        shown = "\n  ".join(problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        raise CheckpointError(f"checkpoint does not match the model ({len(problems)} problem"
                              f"{'s' if len(problems) != 1 else ''}):\n  {shown}{more}")


def check_tensors(where: str, module: nn.Module, given: Dict[str, Tuple[Tuple[int, ...], bool]]) -> List[str]:
    """Problems between a module's state dict and a file's tensors {name: (shape, is_float)}.

    Every parameter must be present; persistent buffers may be absent (derived constants).
    """
    params = {n for n, _ in module.named_parameters()}
    expected = {n: tuple(t.shape) for n, t in module.state_dict(keep_vars=True).items()}
    problems = []
    for name, shape in expected.items():
        if name not in given:
            if name in params:
                problems.append(f"{where}: missing tensor '{name}' (expected shape {_fmt_shape(shape)})")
            continue
        gshape, is_float = given[name]
        if tuple(gshape) != shape:
            problems.append(f"{where}: tensor '{name}' has shape {_fmt_shape(gshape)}, expected {_fmt_shape(shape)}")
        elif not is_float:
            problems.append(f"{where}: tensor '{name}' is not floating point")
    for name in given:
        if name not in expected:
            problems.append(f"{where}: unexpected tensor '{name}' (shape {_fmt_shape(given[name][0])})")
    return problems


def _load_into(module: nn.Module, names, get: Callable[[str], torch.Tensor]) -> nn.Module:
    targets = dict(module.state_dict(keep_vars=True))
    with torch.no_grad():
        for name in names:
            targets[name].data.copy_(get(name))
    return module


# ---------------------------------------------------------------------------------------------
# .pth state dicts


def load_pth(path: Path) -> Dict[str, torch.Tensor]:
    """A torch.save'd state dict (weights only; memory-mapped where torch supports it)."""
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    kw = {"map_location": "cpu"}
    params = inspect.signature(torch.load).parameters
    if "weights_only" in params:
        kw["weights_only"] = True
    if "mmap" in params:
        kw["mmap"] = True
    try:
        obj = torch.load(str(path), **kw)
    except Exception as e:  # unpickling errors have many types
        raise CheckpointError(f"{path}: cannot be read as a torch state dict ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
        obj = next(iter(obj.values()))  # {"state_dict": {...}} style wrapper
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entry '{bad[0]}' is not a tensor ({len(bad)} such entries)")
    return dict(obj)


def _shape(sd: Dict[str, torch.Tensor], name: str, path: Path, ndim: int) -> Tuple[int, ...]:
    if name not in sd:
        raise CheckpointError(f"{path}: missing tensor '{name}' (needed to infer the configuration)")
    s = tuple(sd[name].shape)
    if len(s) != ndim:
        raise CheckpointError(f"{path}: tensor '{name}' has shape {_fmt_shape(s)}, expected {ndim} dimensions")
    return s


def infer_t5_config(sd: Dict[str, torch.Tensor], path: Path) -> T5Config:
    """umT5 sizes from tensor shapes (see the module docstring)."""
    vocab, dim = _shape(sd, "token_embedding.weight", path, 2)
    layers = {int(m.group(1)) for k in sd for m in [re.match(r"blocks\.(\d+)\.", k)] if m}
    if not layers:
        raise CheckpointError(f"{path}: no 'blocks.N.*' tensors")
    dim_attn = _shape(sd, "blocks.0.attn.q.weight", path, 2)[0]
    dim_ffn = _shape(sd, "blocks.0.ffn.fc1.weight", path, 2)[0]
    buckets, heads = _shape(sd, "blocks.0.pos_embedding.embedding.weight", path, 2)
    return T5Config(vocab_size=vocab, dim=dim, dim_attn=dim_attn, dim_ffn=dim_ffn, num_heads=heads,
                    num_layers=max(layers) + 1, num_buckets=buckets)


def infer_vae_config(sd: Dict[str, torch.Tensor], path: Path, base: VAEConfig) -> VAEConfig:
    """VAE sizes from tensor shapes; the rest from `base` (the named model's VAE)."""
    dim, in_ch = _shape(sd, "encoder.conv1.weight", path, 5)[:2]
    version = {3: "2.1", 12: "2.2"}.get(in_ch)
    if version is None:
        raise CheckpointError(f"{path}: encoder.conv1.weight takes {in_ch} input channels; a Wan VAE takes "
                              "3 (Wan 2.1) or 12 (Wan 2.2, patchified)")
    if version != base.version:
        raise CheckpointError(f"{path}: this is a Wan {version} VAE but the model needs the Wan {base.version} "
                              f"VAE ({VAE_FILES[base.version]})")
    z_dim = _shape(sd, "conv2.weight", path, 5)[0]
    dec_dim = _shape(sd, "decoder.head.0.gamma", path, 4)[0]
    if z_dim != len(base.mean):
        raise CheckpointError(f"{path}: z_dim {z_dim} from conv2.weight, but the Wan {version} VAE has "
                              f"{len(base.mean)} latent channels")
    return dataclasses.replace(base, dim=dim, dec_dim=dec_dim, z_dim=z_dim)


# ---------------------------------------------------------------------------------------------
# DiT folders


def open_dit(folder: Path):
    """The DiT tensors of one folder: sharded (index.json) or a single safetensors file."""
    index = folder / f"{DIT_PREFIX}.safetensors.index.json"
    single = folder / f"{DIT_PREFIX}.safetensors"
    try:
        if index.is_file():
            return ShardedSafetensors(index)
        if single.is_file():
            return SafetensorsFile(single)
    except SafetensorsError as e:
        raise CheckpointError(str(e)) from None
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise CheckpointError(f"{folder}: no {index.name} or {single.name} (found: {', '.join(found) or 'nothing'})")


def read_dit_config(folder: Path, source) -> DiTConfig:
    """DiTConfig from `<folder>/config.json` plus text_dim/patch_size from tensor shapes."""
    path = folder / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise CheckpointError(f"{path} not found") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    cls = cfg.get("_class_name", "WanModel")
    if cls != "WanModel":
        raise CheckpointError(f"{path}: _class_name is '{cls}'; only the original Wan layout ('WanModel', "
                              "as shipped by Wan-Video) is supported, not diffusers' renamed format")
    missing = [k for k in _REQUIRED_DIT_KEYS if k not in cfg]
    if missing:
        raise CheckpointError(f"{path}: missing keys {missing}")
    shapes = {}
    for name, ndim in (("text_embedding.0.weight", 2), ("patch_embedding.weight", 5)):
        if name not in source:
            raise CheckpointError(f"{source.path}: missing tensor '{name}'")
        shapes[name] = tuple(source.info(name).shape)
        if len(shapes[name]) != ndim:
            raise CheckpointError(f"{source.path}: tensor '{name}' has shape {_fmt_shape(shapes[name])}, "
                                  f"expected {ndim} dimensions")
    try:
        return DiTConfig(model_type=str(cfg["model_type"]), in_dim=int(cfg["in_dim"]), out_dim=int(cfg["out_dim"]),
                         dim=int(cfg["dim"]), ffn_dim=int(cfg["ffn_dim"]), num_heads=int(cfg["num_heads"]),
                         num_layers=int(cfg["num_layers"]), freq_dim=int(cfg.get("freq_dim", 256)),
                         text_dim=shapes["text_embedding.0.weight"][1], text_len=int(cfg.get("text_len", 512)),
                         patch_size=tuple(shapes["patch_embedding.weight"][2:]), eps=float(cfg.get("eps", 1e-6)))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad value ({e})") from None


def _given(source) -> Dict[str, Tuple[Tuple[int, ...], bool]]:
    out = {}
    for name in source.keys():
        info = source.info(name)
        out[name] = (tuple(info.shape), info.torch_dtype.is_floating_point)
    return out


def _diffs(what: str, got, want) -> List[str]:
    out = []
    for f in dataclasses.fields(want):
        if f.name in ("mean", "std"):
            continue
        g, w = getattr(got, f.name), getattr(want, f.name)
        if (tuple(g) if isinstance(g, (list, tuple)) else g) != (tuple(w) if isinstance(w, (list, tuple)) else w):
            out.append(f"{what}.{f.name} = {g} (the official value is {w})")
    return out


# ---------------------------------------------------------------------------------------------


def load_official(checkpoint_dir: Path, model: str, dtype: str = "bf16", allow_nonstandard: bool = False,
                  progress: Optional[Callable[[str], None]] = None) -> OfficialCheckpoint:
    """Validate an official checkpoint directory of `model` and return component factories."""
    if model not in REAL_NAMES:
        raise CheckpointError(f"unknown model '{model}'; known: {', '.join(REAL_NAMES)}")
    if dtype not in mf.DTYPES:
        raise CheckpointError(f"dtype must be one of {', '.join(mf.DTYPES)}, got '{dtype}'")
    root = Path(checkpoint_dir)
    if not root.is_dir():
        raise CheckpointError(f"checkpoint directory {root} not found")
    say = progress or (lambda msg: None)
    real = get_config(model)
    tokenizer = root / TOKENIZER_PATH
    if not tokenizer.is_file():
        raise CheckpointError(f"{tokenizer} not found (the umT5 tokenizer ships in the checkpoint)")

    # DiT experts: config.json + safetensors headers only, nothing is read yet.
    folders = {e: (root / EXPERT_DIRS[e] if e in EXPERT_DIRS else root) for e in real.experts}
    sources, dit_cfg = {}, None
    try:
        for expert, folder in folders.items():
            src = open_dit(folder)
            sources[expert] = src
            c = read_dit_config(folder, src)
            if c.model_type != real.dit.model_type:
                raise CheckpointError(f"{folder / 'config.json'}: model_type '{c.model_type}' but {model} needs "
                                      f"'{real.dit.model_type}'")
            if dit_cfg is not None and c != dit_cfg:
                raise CheckpointError(f"{folder / 'config.json'} differs from "
                                      f"{folders[real.experts[0]] / 'config.json'}: the experts must match")
            dit_cfg = c
        say(f"reading {T5_FILE}")
        t5_path = root / T5_FILE
        t5_sd = load_pth(t5_path)
        t5_cfg = infer_t5_config(t5_sd, t5_path)
        vae_path = root / VAE_FILES[real.vae.version]
        if not vae_path.is_file():
            other = root / VAE_FILES["2.1" if real.vae.version == "2.2" else "2.2"]
            hint = f" ({other.name} is there: is this a checkpoint of another model?)" if other.is_file() else ""
            raise CheckpointError(f"{vae_path} not found{hint}")
        vae_sd = load_pth(vae_path)
        vae_cfg = infer_vae_config(vae_sd, vae_path, real.vae)
        if dit_cfg.text_dim != t5_cfg.dim:
            raise CheckpointError(f"the DiT embeds text of width {dit_cfg.text_dim} but the text encoder "
                                  f"({t5_path.name}) has width {t5_cfg.dim}")

        diffs = _diffs("dit", dit_cfg, real.dit) + _diffs("text_encoder", t5_cfg, real.t5) + \
            _diffs("vae", vae_cfg, real.vae)
        if diffs and not allow_nonstandard:
            raise CheckpointError(f"{root} is not the official {model} configuration: " + "; ".join(diffs[:5]) +
                                  (f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else "") +
                                  ". Pass --allow-nonstandard to export it anyway.")
        cfg = dataclasses.replace(real, t5=t5_cfg, dit=dit_cfg, vae=vae_cfg,
                                  model_id=real.model_id + ("-nonstandard" if diffs else ""))

        problems: List[str] = []
        for expert, src in sources.items():
            problems += check_tensors(str(src.path), build_module(cfg, expert, device="meta"), _given(src))
        problems += check_tensors(str(t5_path), build_module(cfg, "text_encoder", device="meta"),
                                  {k: (tuple(v.shape), v.is_floating_point()) for k, v in t5_sd.items()})
        problems += check_tensors(str(vae_path), build_module(cfg, "vae", device="meta"),
                                  {k: (tuple(v.shape), v.is_floating_point()) for k, v in vae_sd.items()})
        _raise_problems(problems)
    except BaseException:
        for src in sources.values():
            src.close()
        raise

    def from_state_dict(component: str, holder: List[Dict[str, torch.Tensor]], path: Path):
        def factory() -> nn.Module:
            if not holder:
                raise CheckpointError(f"{path} was already consumed by an earlier build")
            sd = holder.pop()
            m = allocate_module(cfg, component, dtype)
            return _load_into(m, list(sd), sd.__getitem__)
        return factory

    def from_safetensors(component: str):
        def factory() -> nn.Module:
            src = sources[component]
            try:
                m = allocate_module(cfg, component, dtype)
                return _load_into(m, src.keys(), src.get)
            finally:
                src.close()
        return factory

    modules: Dict[str, Callable[[], nn.Module]] = {
        "text_encoder": from_state_dict("text_encoder", [t5_sd], t5_path)}
    for expert in cfg.experts:
        modules[expert] = from_safetensors(expert)
    modules["vae"] = from_state_dict("vae", [vae_sd], vae_path)
    del t5_sd, vae_sd
    return OfficialCheckpoint(cfg=cfg, tokenizer=tokenizer, modules=modules, standard=not diffs)
