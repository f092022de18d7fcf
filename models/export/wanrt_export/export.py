"""Bundle writer: builds, casts, scripts and saves the components, then the manifest.

A bundle is written into a temporary directory beside `out_dir` (same filesystem) and
renamed into place only when complete, so an interrupted export leaves neither a half
bundle nor a temporary directory. Components may be given as modules or as zero-argument
factories; factories are built one at a time and freed before the next, which keeps the
peak host memory of a real-size export to about one component.
"""
import contextlib
import hashlib
import math
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Set, Union

import torch
import torch.nn as nn

from . import attention as attn
from . import manifest as mf
from . import safetensors_io as st
from . import torchscript as ts
from . import weights as wt
from .configs import ModelConfig, get_config, with_sampling_preset
from .lora import LoraSpec, LoraStack

Progress = Optional[Callable[[str], None]]
ModuleOrFactory = Union[nn.Module, Callable[[], nn.Module]]

# Files above this size report hashing progress in percent.
HASH_PROGRESS_BYTES = 1 << 30
_HASH_CHUNK = 16 << 20


class ExportError(RuntimeError):
    """An export that cannot proceed (bad input, existing output, ...)."""


# ---------------------------------------------------------------------------------------------
# Building modules


def keep_patterns(cfg: ModelConfig, component: str) -> List[str]:
    """keep-fp32 globs of a component, from the module that implements it."""
    if component == "text_encoder":
        from .t5 import keep_fp32_patterns
    elif component.startswith("dit"):
        from .dit import keep_fp32_patterns
    elif component == "vae":
        from .vae import keep_fp32_patterns
    else:
        raise ValueError(f"unknown component '{component}'")
    return list(keep_fp32_patterns())


def build_module(cfg: ModelConfig, component: str, device=None, dtype: Optional[torch.dtype] = None) -> nn.Module:
    """Construct one component (eval mode) with the implementation's own initialisation.

    device="meta" builds it without memory, for sizing. The VAE is always fp32.
    """
    if component == "text_encoder":
        from .t5 import UMT5Encoder
        m = UMT5Encoder(cfg.t5, device=device, dtype=dtype)
    elif component in cfg.experts:
        from .dit import WanModel
        m = WanModel(cfg.dit, device=device, dtype=dtype)
    elif component == "vae":
        from .vae import build_vae
        m = build_vae(cfg.vae, device=device)  # fp32 always
    else:
        raise ValueError(f"component '{component}' is not part of {cfg.name} "
                         f"(components: {', '.join(mf.component_names(cfg))})")
    return m.eval()


def allocate_module(cfg: ModelConfig, component: str, dtype: str) -> nn.Module:
    """A module in its stored dtypes (keep-fp32 parameters fp32) whose every parameter
    will be overwritten by the caller (random init or checkpoint).

    Built on `meta` and materialised with to_empty when it has no buffers (skipping the
    implementation's initialisation, which is slow at 14B); otherwise built normally
    because buffers are derived constants that to_empty would leave uninitialised.
    """
    sdt = mf.DTYPES["fp32" if component == "vae" else dtype]
    keep = keep_patterns(cfg, component)
    meta = build_module(cfg, component, device="meta", dtype=None if component == "vae" else sdt)
    if next(iter(meta.buffers()), None) is None:
        mf.cast_parameters_(meta, sdt, keep)
        return meta.to_empty(device="cpu").eval()
    del meta
    m = build_module(cfg, component, dtype=None if component == "vae" else sdt)
    return mf.cast_parameters_(m, sdt, keep)


# ---------------------------------------------------------------------------------------------
# Deterministic random weights

_SEED_SLOT = {"text_encoder": 1, "dit": 2, "dit_high_noise": 3, "dit_low_noise": 4, "vae": 5}


def _init_kind(name: str, p: torch.Tensor) -> str:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "modulation":
        return "modulation"
    if leaf == "gamma" or ("norm" in name and leaf == "weight" and p.dim() == 1):
        return "norm"
    if leaf == "bias" or p.dim() < 2:
        return "small"
    return "fan_in"


def _fill_random_(name: str, p: torch.Tensor, g: torch.Generator) -> None:
    """Overwrite one parameter's data (see randomize_) with the next draws of `g`."""
    kind = _init_kind(name, p)
    if kind == "fan_in":
        scale, offset = 1.0 / math.sqrt(max(1, p.numel() // max(1, p.shape[0]))), 0.0
    else:
        scale, offset = {"modulation": (0.1, 0.0), "norm": (0.05, 1.0), "small": (0.02, 0.0)}[kind]
    flat = p.view(p.shape[0], -1) if p.dim() >= 1 and p.shape[0] > 0 else p.view(1, -1)
    rows = max(1, (1 << 26) // max(1, flat.shape[1]))
    for r in range(0, flat.shape[0], rows):
        part = torch.randn(flat[r:r + rows].shape, generator=g, dtype=torch.float32)
        flat[r:r + rows].copy_(part.mul_(scale).add_(offset))


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Overwrite every parameter deterministically from `seed`.

    Rule: norm scales (`*norm*.weight`, `gamma`) 1 + 0.05 N; modulation tables 0.1 N; biases
    and other 1-D tensors 0.02 N; everything else N / sqrt(fan_in), so activations keep unit
    scale and no path is degenerate. Values are drawn in fp32 from one generator in
    parameter order, in row chunks of at most 2^26 elements, then cast to each parameter's
    dtype: the same seed gives byte-identical weights, and a bf16 export holds the bf16
    rounding of the fp32 one.
    """
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.is_floating_point():
                _fill_random_(name, p.data, g)
    return module


def write_random_weights(meta: nn.Module, seed: int, path: Path, component: str,
                         blocks_attr: Optional[str],
                         transform: Optional[Callable[[str, torch.Tensor], torch.Tensor]] = None) -> None:
    """The format 2 weights file of `meta` (a module on the meta device, in its stored dtypes)
    filled as randomize_(module, seed) would fill it, byte for byte, one parameter in memory
    at a time: a real-size component is written without ever being held whole. `transform`
    (name, tensor) -> tensor of the same shape and dtype is applied to each parameter after
    it is drawn (LoRA merging); the draws themselves do not change."""
    order = wt.weight_order(meta, blocks_attr)
    specs = [(name, p.dtype, tuple(p.shape)) for name, p in order]
    g = torch.Generator().manual_seed(int(seed))
    with st.TensorWriter(path, specs, metadata={wt.META_COMPONENT: component, wt.META_FORMAT: "2"},
                         alignment=wt.DATA_ALIGNMENT) as out, torch.no_grad():
        for name, p in meta.named_parameters():  # randomize_'s order: the generator's draws
            t = torch.empty(p.shape, dtype=p.dtype)
            if p.is_floating_point():
                _fill_random_(name, t, g)
            else:
                t.zero_()
            if transform is not None:
                t = transform(name, t)
            out.write(name, t)
            del t


def random_module(cfg: ModelConfig, component: str, seed: int, dtype: str = "fp32") -> nn.Module:
    """One component with deterministic random weights (see randomize_) in stored dtypes."""
    m = allocate_module(cfg, component, dtype)
    return randomize_(m, seed * 16 + _SEED_SLOT[component])


class RandomComponent:
    """A component with deterministic random weights (random_module), made only when the
    exporter reaches it: called, it builds the module; in format 2 the exporter instead takes
    meta() and streams the weights straight into the file (write_random_weights), so a
    real-size component is never held whole."""

    def __init__(self, cfg: ModelConfig, component: str, seed: int, dtype: str):
        self.cfg, self.component, self.seed, self.dtype = cfg, component, seed, dtype
        self.seed_value = seed * 16 + _SEED_SLOT[component]

    def __call__(self) -> nn.Module:
        return random_module(self.cfg, self.component, self.seed, self.dtype)

    def meta(self) -> Optional[nn.Module]:
        """The module on the meta device in its stored dtypes, or None when it has buffers
        (derived constants that must be computed, so it is built for real)."""
        sdt = mf.DTYPES["fp32" if self.component == "vae" else self.dtype]
        m = build_module(self.cfg, self.component, device="meta",
                         dtype=None if self.component == "vae" else sdt)
        if next(iter(m.buffers()), None) is not None:
            return None
        return mf.cast_parameters_(m, sdt, keep_patterns(self.cfg, self.component))


def random_modules(cfg: ModelConfig, seed: int, dtype: str = "fp32", lazy: bool = False) -> Dict[str, ModuleOrFactory]:
    """All components of `cfg` with random weights; lazy=True returns RandomComponent factories
    instead (for real sizes: each component is made only when the exporter reaches it)."""
    out: Dict[str, ModuleOrFactory] = {}
    for c in mf.component_names(cfg):
        factory = RandomComponent(cfg, c, seed, dtype)
        out[c] = factory if lazy else factory()
    return out


# ---------------------------------------------------------------------------------------------
# Writing


class _SortedSet(set):
    """A set that iterates in sorted order."""

    def __iter__(self):
        return iter(sorted(super().__iter__(), key=repr))


@contextlib.contextmanager
def _reproducible_scripting():
    """TorchScript collects a module's constants in a Python set and emits them in its
    iteration order, which depends on PYTHONHASHSEED; sorting makes the saved code, and so
    the sha256, the same from run to run. (Type names still carry per-process mangle
    counters, so files are reproducible per command, not per call within one process.)"""
    rec = getattr(torch.jit, "_recursive", None)
    if rec is None:
        yield
        return
    had = "set" in vars(rec)
    old = vars(rec).get("set")
    rec.set = _SortedSet
    try:
        yield
    finally:
        if had:
            rec.set = old
        else:
            del rec.set


def script_module(module: nn.Module) -> torch.jit.ScriptModule:
    with _reproducible_scripting():
        return ts.script(module)


def module_attention(module: nn.Module) -> Optional[str]:
    """The attention `module`'s attending submodules were built with ("math"/"sdpa"); None when
    it has none; an ExportError when they disagree."""
    found = {"sdpa" if m.use_sdpa else "math" for m in module.modules() if hasattr(m, "use_sdpa")}
    if len(found) > 1:
        raise ExportError("a module mixes SDPA and explicit attention; construct it under one attention.use(...)")
    return found.pop() if found else None


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024.0
    return f"{n:.1f} GiB"


def sha256_file(path: Path, progress: Progress = None) -> str:
    """Hex sha256 of a file; reports percentages through `progress` for large files."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    done, last = 0, -1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_HASH_CHUNK)
            if not chunk:
                break
            h.update(chunk)
            done += len(chunk)
            if progress and size >= HASH_PROGRESS_BYTES:
                pct = done * 100 // size
                if pct // 10 != last // 10:
                    progress(f"  sha256 {Path(path).name}: {pct}%")
                    last = pct
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_replaceable(path: Path) -> bool:
    """--force replaces only a previous bundle or an empty directory, never arbitrary data."""
    if path.is_dir() and not path.is_symlink():
        return (path / "wanrt.yaml").is_file() or not any(path.iterdir())
    return False


def check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if not force:
            raise ExportError(f"{out_dir} already exists; pass --force to replace it")
        if not _is_replaceable(out_dir):
            raise ExportError(f"refusing to replace {out_dir}: it is not a wanrt bundle (no wanrt.yaml) "
                              "and not an empty directory")


def _commit(tmp: Path, out_dir: Path, force: bool) -> None:
    check_out_dir(out_dir, force)
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _check_format(format_version: int) -> None:
    if format_version not in mf.FORMAT_VERSIONS:
        raise ExportError(f"format must be one of {', '.join(map(str, mf.FORMAT_VERSIONS))}, got {format_version}")


def _saved(path: Path, progress: Progress) -> str:
    """fsync a file just written and return its sha256."""
    _fsync(path)
    return sha256_file(path, progress)


@contextlib.contextmanager
def _staging(out_dir: Path, force: bool):
    """A temporary directory beside `out_dir` (same filesystem) to write a bundle into: renamed
    into place when the block ends, removed when it raises."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a bundle is an ordinary folder
        yield tmp
        _commit(tmp, out_dir, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_tokenizer(path: Path, cfg: ModelConfig) -> None:
    """The tokenizer must have umT5's special ids and fit the text encoder's vocabulary."""
    from .tokenizer import WanTokenizer
    try:
        tok = WanTokenizer(str(path), cfg.dit.text_len)
    except (RuntimeError, OSError) as e:  # sentencepiece raises RuntimeError/OSError on bad files
        raise ExportError(f"{path}: not a usable SentencePiece model ({e})") from None
    if tok.vocab_size > cfg.t5.vocab_size:
        raise ExportError(f"tokenizer {path} has {tok.vocab_size} pieces but the text encoder "
                          f"embeds only {cfg.t5.vocab_size}")


def lora_stacks(cfg: ModelConfig, loras: Optional[Dict[str, Sequence[LoraSpec]]],
                allow_partial: bool = False) -> Dict[str, LoraStack]:
    """component -> LoraStack, read and checked against the DiT's parameter shapes (from a
    meta module) before anything is written."""
    stacks: Dict[str, LoraStack] = {}
    for comp, specs in (loras or {}).items():
        if not specs:
            continue
        if comp not in cfg.experts:
            raise ExportError(f"LoRAs go into the DiT ({', '.join(cfg.experts)}), not '{comp}'")
        meta = build_module(cfg, comp, device="meta")
        stacks[comp] = LoraStack(specs, {n: tuple(p.shape) for n, p in meta.named_parameters()},
                                 allow_partial)
    return stacks


def export_bundle(cfg: ModelConfig, modules: Dict[str, ModuleOrFactory], tokenizer_model: Path,
                  out_dir: Path, dtype: str = "fp32", progress: Progress = None, force: bool = False,
                  format_version: int = mf.FORMAT_VERSION,
                  loras: Optional[Dict[str, Sequence[LoraSpec]]] = None,
                  sampling_preset: Optional[str] = None, allow_partial_lora: bool = False) -> dict:
    """Write a complete bundle for `cfg` to `out_dir` and return its manifest dict.

    `modules` maps each component name (manifest.component_names(cfg)) to a module or a
    factory. Modules are cast IN PLACE to `dtype` (the VAE always fp32) except their
    keep-fp32 parameters, scripted and saved. Format 2 (the default) writes each component's
    parameters to a safetensors file and saves the scripted module with placeholders in their
    place (weights.py). Refuses an existing `out_dir` unless
    `force`, which replaces it only after the new bundle is complete.

    `loras` maps DiT components to [(file, strength), ...] merged into their weights before
    writing (float32 arithmetic from the weights in their stored dtype, result in that dtype;
    lora.py; per tensor on the streamed random-weight path). `sampling_preset` ("lightning")
    replaces the manifest's sampling defaults (configs.SAMPLING_PRESETS).
    """
    if dtype not in mf.DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(mf.DTYPES)}, got '{dtype}'")
    _check_format(format_version)
    out_dir = Path(out_dir).absolute()
    tokenizer_model = Path(tokenizer_model)
    check_out_dir(out_dir, force)
    names = mf.component_names(cfg)
    missing, extra = [n for n in names if n not in modules], [n for n in modules if n not in names]
    if missing or extra:
        raise ExportError(f"components for {cfg.name} must be {names}; missing {missing}, unexpected {extra}")
    if not tokenizer_model.is_file():
        raise ExportError(f"tokenizer model {tokenizer_model} not found")
    check_tokenizer(tokenizer_model, cfg)
    say = progress or (lambda msg: None)
    stacks = lora_stacks(cfg, loras, allow_partial_lora)
    manifest_cfg = with_sampling_preset(cfg, sampling_preset)

    with _staging(out_dir, force) as tmp:
        entries = {}
        attention: Set[Optional[str]] = set()
        for i, comp in enumerate(names):
            item = modules[comp]
            meta = item.meta() if format_version >= 2 and isinstance(item, RandomComponent) else None
            module = meta if meta is not None else item if isinstance(item, nn.Module) else item()
            stack = stacks.get(comp)
            if stack is not None and meta is None:
                say(f"[{i + 1}/{len(names)}] {comp}: merging {len(stack.items)} LoRA(s)")
                stack.apply_(module)
            comp_dtype = "fp32" if comp == "vae" else dtype
            keep = keep_patterns(cfg, comp)
            mf.cast_parameters_(module, mf.DTYPES[comp_dtype], keep)
            module.eval()
            file = mf.component_file(comp)
            blocks_attr = None if comp == "vae" else "blocks"
            stats = mf.size_stats(module, blocks_attr)
            weights = {}
            if format_version >= 2:
                wfile = mf.weights_file(comp)
                say(f"[{i + 1}/{len(names)}] {comp}: writing {wfile} "
                    f"({stats['parameters']:,} parameters, {human_bytes(stats['bytes'])} {comp_dtype})")
                if meta is not None:
                    if stack is not None:
                        say(f"[{i + 1}/{len(names)}] {comp}: merging {len(stack.items)} LoRA(s)")
                    write_random_weights(meta, item.seed_value, tmp / wfile, comp, blocks_attr,
                                         stack.merged if stack is not None else None)
                else:
                    wt.write_weights(module, tmp / wfile, comp, blocks_attr)
                weights = {"weights": wfile, "weights_sha256": _saved(tmp / wfile, progress)}
            say(f"[{i + 1}/{len(names)}] {comp}: scripting and saving {file}"
                + ("" if weights else f" ({stats['parameters']:,} parameters, "
                                      f"{human_bytes(stats['bytes'])} {comp_dtype})"))
            scripted = script_module(module)
            if weights:
                wt.strip_parameters_(scripted, module)
            ts.save(scripted, str(tmp / file))
            del scripted
            sha = _saved(tmp / file, progress)
            # (Placeholders keep each parameter's shape and dtype, so the sizes are the real ones.)
            entries[comp] = mf.component_entry(comp, module, comp_dtype, keep, file=file, sha256=sha, **weights)
            attention.add(module_attention(module))
            del module, meta, item
            written = sum(os.path.getsize(tmp / f) for f in (file, weights.get("weights")) if f)
            say(f"[{i + 1}/{len(names)}] {comp}: wrote {file}"
                + (f" and {weights['weights']}" if weights else "") + f" ({human_bytes(written)})")
        tok = tmp / mf.TOKENIZER_FILE
        tok.parent.mkdir(parents=True)
        shutil.copyfile(tokenizer_model, tok)
        attention.discard(None)
        if len(attention) > 1:
            raise ExportError(f"components of one bundle use different attention ({sorted(attention)}); "
                              "construct them all under one attention.use(...)")
        doc = mf.build_manifest(manifest_cfg, entries, mf.tokenizer_entry(cfg, sha256_file(tok)),
                                attention=attention.pop() if attention else attn.mode(),
                                format_version=format_version)
        mf.write_yaml(doc, tmp / "wanrt.yaml")
        _fsync(tmp / "wanrt.yaml")
    say(f"bundle {cfg.name} written to {out_dir}")
    return doc


def export_random(config_name: str, seed: int, out_dir: Path, dtype: str = "fp32",
                  tokenizer_model: Optional[Path] = None, progress: Progress = None, force: bool = False,
                  format_version: int = mf.FORMAT_VERSION,
                  loras: Optional[Dict[str, Sequence[LoraSpec]]] = None,
                  sampling_preset: Optional[str] = None, allow_partial_lora: bool = False) -> dict:
    """A bundle of `config_name` with random weights; trains the tiny tokenizer when none is
    given. `loras` and `sampling_preset` as in export_bundle."""
    cfg = get_config(config_name)
    with contextlib.ExitStack() as stack:
        if tokenizer_model is None:
            from .tokenizer import train_tiny_tokenizer
            tdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="wanrt-tok-"))
            tokenizer_model = train_tiny_tokenizer(Path(tdir))
        return export_bundle(cfg, random_modules(cfg, seed, dtype, lazy=True), tokenizer_model, out_dir,
                             dtype, progress, force, format_version, loras, sampling_preset,
                             allow_partial_lora)


def convert_bundle(in_dir: Path, out_dir: Path, format_version: int = mf.FORMAT_VERSION,
                   progress: Progress = None, force: bool = False) -> dict:
    """Rewrite bundle `in_dir` in format `format_version` at `out_dir`: the same code, weights,
    tokenizer and manifest (hashes and, for format 2, weights files updated). One component is
    in memory at a time; atomic like export_bundle."""
    _check_format(format_version)
    in_dir, out_dir = Path(in_dir).absolute(), Path(out_dir).absolute()
    if not (in_dir / "wanrt.yaml").is_file():
        raise ExportError(f"{in_dir} is not a bundle (no wanrt.yaml)")
    check_out_dir(out_dir, force)
    say = progress or (lambda msg: None)
    doc = mf.read_yaml(in_dir / "wanrt.yaml")
    if doc.get("profile"):
        raise ExportError(f"{in_dir / 'wanrt.yaml'} is a planning profile; it has no weights to convert")
    with _staging(out_dir, force) as tmp:
        components = doc["components"]
        for i, (comp, entry) in enumerate(components.items()):
            say(f"[{i + 1}/{len(components)}] {comp}: reading format {doc['format_version']}")
            scripted = wt.load_component(in_dir, entry)
            entry = {k: v for k, v in entry.items() if k not in ("weights", "weights_sha256")}
            if format_version >= 2:
                wfile = mf.weights_file(comp)
                blocks = entry["contract"].get("blocks") or None
                wt.write_weights(scripted, tmp / wfile, comp, blocks)
                weights = {"weights": wfile, "weights_sha256": _saved(tmp / wfile, progress)}
                wt.strip_scripted_(scripted)
            ts.save(scripted, str(tmp / entry["file"]))
            del scripted
            entry["sha256"] = _saved(tmp / entry["file"], progress)
            if format_version >= 2:
                # Keep the manifest's key order: weights right after file and sha256.
                keys = list(entry)
                at = keys.index("sha256") + 1
                entry = dict(list(entry.items())[:at] + list(weights.items()) + list(entry.items())[at:])
            components[comp] = entry
            say(f"[{i + 1}/{len(components)}] {comp}: wrote format {format_version}")
        tok = doc["tokenizer"]["file"]
        (tmp / tok).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(in_dir / tok, tmp / tok)
        doc["format_version"] = format_version
        mf.write_yaml(doc, tmp / "wanrt.yaml")
        _fsync(tmp / "wanrt.yaml")
    say(f"bundle converted to format {format_version} at {out_dir}")
    return doc


# ---------------------------------------------------------------------------------------------
# Profiles


def build_profile(config_name: str) -> dict:
    """Profile of a configuration from meta-device modules: DiT/T5 in bf16 with keep-fp32
    parameters in fp32 (the official shipping dtype), the VAE in fp32."""
    cfg = get_config(config_name)
    entries = {}
    for comp in mf.component_names(cfg):
        dt = "fp32" if comp == "vae" else "bf16"
        keep = keep_patterns(cfg, comp)
        m = build_module(cfg, comp, device="meta", dtype=None if comp == "vae" else mf.DTYPES[dt])
        mf.cast_parameters_(m, mf.DTYPES[dt], keep)
        entries[comp] = mf.component_entry(comp, m, dt, keep)
    return mf.build_manifest(cfg, entries, mf.tokenizer_entry(cfg, profile=True), profile=True)


def write_profiles(out_dir: Path, names=None) -> List[Path]:
    """Write the profile of each real configuration to `<out_dir>/<model_id>.yaml`."""
    from .configs import REAL_NAMES
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or REAL_NAMES:
        path = out_dir / mf.profile_file_name(get_config(name))
        tmp = path.with_name(path.name + ".tmp")
        mf.write_yaml(build_profile(name), tmp)
        os.replace(tmp, path)
        paths.append(path)
    return paths
