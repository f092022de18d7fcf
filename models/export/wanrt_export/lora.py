"""LoRA files: reading the common layouts and merging them into DiT weights (reference).

A LoRA file is a safetensors file. Each key is ``[prefix]<module><suffix>``:

* prefix (stripped, repeatedly): ``diffusion_model.``, ``transformer.``, ``base_model.model.``;
* suffix: ``.lora_down.weight`` / ``.lora_up.weight`` (official, Lightning), ``.lora_A.weight``
  / ``.lora_B.weight`` (PEFT; A = down, B = up), ``.alpha`` (scalar), ``.diff`` (a full delta
  of ``<module>.weight``, or of ``<module>`` itself when that is a bare parameter such as
  ``blocks.0.modulation``), ``.diff_b`` (a full delta of ``<module>.bias``).

Module names are ours (= the official Wan names). A file whose module names include a
diffusers-only name (``attn1``, ``attn2``, ``ffn.net``, ``proj_out``, ``scale_shift_table``,
``condition_embedder``) is read with diffusers names throughout and mapped by
``diffusers_to_wan`` (e.g. ``blocks.0.attn1.to_q`` -> ``blocks.0.self_attn.q``,
``blocks.0.norm2`` -> ``blocks.0.norm3``).

Merge, for each LoRA in the given order with strength s, in float32 (``W`` is the parameter
converted to float32; the result is cast back to the parameter's dtype at the end):

* ``rank = down.shape[0]``; ``alpha`` = the ``.alpha`` value, else ``rank``;
* ``delta = up.flatten(1) @ down.flatten(1)`` (float32), viewed as W's shape;
  ``W = W + delta * float32(s * alpha / rank)`` (the scalar computed in double);
* then ``W = W + diff * float32(s)`` for a ``.diff``/``.diff_b`` (no alpha/rank factor);
* a LoRA of strength 0 is checked but not applied (the weights stay bit-identical).

Errors (ValueError): a LoRA whose shapes do not fit its parameter (naming the keys, their shapes
and the parameter's), a down without its up or the reverse, and keys that match no parameter
(listed) unless ``allow_partial``; a file of which no key matches is an error either way.
"""
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from . import safetensors_io as st

PathLike = Union[str, Path]
Shapes = Dict[str, Tuple[int, ...]]
LoraSpec = Tuple[PathLike, float]

PREFIXES = ("diffusion_model.", "transformer.", "base_model.model.")
# suffix -> role
SUFFIXES = ((".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_A.weight", "down"),
            (".lora_B.weight", "up"), (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff", "diff"))

# diffusers module name (block-relative where it starts with "."), ours
_DIFFUSERS_BLOCK = (
    ("attn1.to_q", "self_attn.q"), ("attn1.to_k", "self_attn.k"), ("attn1.to_v", "self_attn.v"),
    ("attn1.to_out.0", "self_attn.o"), ("attn1.norm_q", "self_attn.norm_q"),
    ("attn1.norm_k", "self_attn.norm_k"),
    ("attn2.to_q", "cross_attn.q"), ("attn2.to_k", "cross_attn.k"), ("attn2.to_v", "cross_attn.v"),
    ("attn2.to_out.0", "cross_attn.o"), ("attn2.norm_q", "cross_attn.norm_q"),
    ("attn2.norm_k", "cross_attn.norm_k"),
    ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"), ("norm2", "norm3"),
    ("scale_shift_table", "modulation"),
)
_DIFFUSERS_TOP = (
    ("scale_shift_table", "head.modulation"), ("proj_out", "head.head"),
    ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
    ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
    ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
    ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("patch_embedding", "patch_embedding"),
)
_DIFFUSERS_MARKERS = re.compile(r"(^|\.)(attn1|attn2|ffn\.net|proj_out|scale_shift_table|"
                                r"condition_embedder)(\.|$)")
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _rename(module: str, pairs_block, pairs_top) -> Optional[str]:
    """`module` through (from, to) pairs: block-relative ones under `blocks.N.`, else top-level
    ones; None when no pair matches."""
    m = _BLOCK.match(module)
    if m:
        return next((f"blocks.{m.group(1)}.{to}" for frm, to in pairs_block if m.group(2) == frm),
                    None)
    return next((to for frm, to in pairs_top if module == frm), None)


def diffusers_to_wan(module: str) -> Optional[str]:
    """Our module name for a diffusers one (None when it has no counterpart)."""
    return _rename(module, _DIFFUSERS_BLOCK, _DIFFUSERS_TOP)


def wan_to_diffusers(module: str) -> Optional[str]:
    """The diffusers module name for one of ours (inverse of diffusers_to_wan)."""
    return _rename(module, [(ours, theirs) for theirs, ours in _DIFFUSERS_BLOCK],
                   [(ours, theirs) for theirs, ours in _DIFFUSERS_TOP])
    for theirs, ours in _DIFFUSERS_TOP:
        if module == ours:
            return theirs
    return None


def strip_prefix(key: str) -> str:
    """The key without its known prefixes (any order, repeated)."""
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def split_key(key: str) -> Tuple[Optional[str], Optional[str]]:
    """(module, role) of a key with its prefix stripped; (None, None) for an unknown suffix."""
    bare = strip_prefix(key)
    for suffix, role in SUFFIXES:
        if bare.endswith(suffix) and len(bare) > len(suffix):
            return bare[:-len(suffix)], role
    return None, None


def detect_layout(keys: Iterable[str]) -> str:
    """"diffusers", "peft", "official" (lora_down/up) or "diff" (only full deltas)."""
    keys = list(keys)
    modules = [split_key(k)[0] for k in keys]
    if any(m is not None and _DIFFUSERS_MARKERS.search(m) for m in modules):
        return "diffusers"
    if any(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys):
        return "peft"
    if any(k.endswith((".lora_down.weight", ".lora_up.weight")) for k in keys):
        return "official"
    return "diff"


@dataclass
class LoraPatch:
    """One change to one parameter: a low-rank pair (kind "lora") or a full delta ("diff")."""
    target: str
    kind: str
    keys: Tuple[str, ...]
    up: Optional[Tensor] = None
    down: Optional[Tensor] = None
    alpha: Optional[float] = None
    diff: Optional[Tensor] = None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0]) if self.down is not None else 0

    def scale(self, strength: float) -> float:
        """s * alpha / rank for a pair (alpha absent: rank), s for a full delta."""
        if self.kind == "diff":
            return float(strength)
        alpha = float(self.rank) if self.alpha is None else float(self.alpha)
        return float(strength) * alpha / float(self.rank)

    def delta(self) -> Tensor:
        """The unscaled float32 delta, in the flattened [out, in] form for a pair."""
        if self.kind == "diff":
            return self.diff.float()
        return self.up.float().flatten(1) @ self.down.float().flatten(1)


@dataclass
class ParsedLora:
    """A LoRA file read against a parameter shape map."""
    source: str
    layout: str
    patches: List[LoraPatch] = field(default_factory=list)
    unmatched: List[str] = field(default_factory=list)


def _fit_error(source: str, patch: LoraPatch, want: Tuple[int, ...], why: str) -> ValueError:
    parts = []
    for key, t in zip(patch.keys, (patch.up, patch.down) if patch.kind == "lora" else (patch.diff,)):
        parts.append(f"'{key}' {list(t.shape)}")
    return ValueError(f"{source}: LoRA does not fit parameter '{patch.target}' {list(want)}: "
                      f"{' and '.join(parts)} ({why})")


def _check_fit(source: str, patch: LoraPatch, want: Tuple[int, ...]) -> None:
    if patch.kind == "diff":
        if tuple(patch.diff.shape) != tuple(want):
            raise _fit_error(source, patch, want, "a full delta must have the parameter's shape")
        return
    up, down = patch.up, patch.down
    if up.dim() < 2 or down.dim() < 2:
        raise _fit_error(source, patch, want, "up and down must have at least 2 dimensions")
    rank = int(down.shape[0])
    in_elems = 1
    for d in want[1:]:
        in_elems *= int(d)
    if int(up.flatten(1).shape[1]) != rank:
        raise _fit_error(source, patch, want, f"up's inner size {up.flatten(1).shape[1]} is not the "
                                              f"rank {rank}")
    if len(want) < 2 or int(up.shape[0]) != int(want[0]) or int(down.flatten(1).shape[1]) != in_elems:
        raise _fit_error(source, patch, want, f"up @ down is [{up.shape[0]}, "
                                              f"{down.flatten(1).shape[1]}], the parameter "
                                              f"[{want[0] if want else 0}, {in_elems}]")


def parse_lora(tensors: Dict[str, Tensor], shapes: Shapes, source: str = "<lora>") -> ParsedLora:
    """Group the keys of one LoRA file per target parameter and check them against `shapes`
    (parameter name -> shape). Keys that match nothing go to `unmatched`; misfits raise."""
    layout = detect_layout(tensors)
    diffusers = layout == "diffusers"
    groups: Dict[str, Dict[str, Tuple[str, Tensor]]] = {}
    out = ParsedLora(source, layout)
    for key, t in tensors.items():
        module, role = split_key(key)
        if module is not None and diffusers:
            module = diffusers_to_wan(module)
        if module is None:
            out.unmatched.append(key)
            continue
        groups.setdefault(module, {})[role] = (key, t)
    for module, roles in groups.items():
        pair = [r for r in ("up", "down") if r in roles]
        if len(pair) == 1:
            other = "up" if pair[0] == "down" else "down"
            raise ValueError(f"{source}: '{roles[pair[0]][0]}' has no matching lora_{other} "
                             "(lora_B/lora_A) tensor")
        used = set()
        if pair:
            target = f"{module}.weight"
            if target not in shapes:
                out.unmatched.extend(roles[r][0] for r in ("up", "down", "alpha") if r in roles)
            else:
                alpha = None
                if "alpha" in roles:
                    a = roles["alpha"][1]
                    if a.numel() != 1:
                        raise ValueError(f"{source}: '{roles['alpha'][0]}' must be a scalar, is "
                                         f"{list(a.shape)}")
                    alpha = float(a.float().reshape(()).item())
                p = LoraPatch(target, "lora", (roles["up"][0], roles["down"][0]), up=roles["up"][1],
                              down=roles["down"][1], alpha=alpha)
                _check_fit(source, p, shapes[target])
                out.patches.append(p)
            used.update(("up", "down", "alpha"))
        elif "alpha" in roles:
            out.unmatched.append(roles["alpha"][0])   # an alpha without a pair changes nothing
            used.add("alpha")
        for role, candidates in (("diff", (f"{module}.weight", module)), ("diff_b", (f"{module}.bias",))):
            if role not in roles:
                continue
            target = next((c for c in candidates if c in shapes), None)
            if target is None:
                out.unmatched.append(roles[role][0])
                continue
            p = LoraPatch(target, "diff", (roles[role][0],), diff=roles[role][1])
            _check_fit(source, p, shapes[target])
            out.patches.append(p)
    return out


def read_lora(path: PathLike, shapes: Shapes, allow_partial: bool = False) -> ParsedLora:
    """parse_lora of a safetensors file, raising on unmatched keys unless `allow_partial`
    (and always when no key matches)."""
    path = Path(path)
    tensors = st.load_file(path)
    parsed = parse_lora(tensors, shapes, str(path))
    if not parsed.patches:
        raise ValueError(f"{path}: no tensor of this LoRA matches a parameter of the model "
                         f"({len(tensors)} tensors, e.g. {list(tensors)[:3]})")
    if parsed.unmatched and not allow_partial:
        shown = ", ".join(parsed.unmatched[:10])
        more = f" and {len(parsed.unmatched) - 10} more" if len(parsed.unmatched) > 10 else ""
        raise ValueError(f"{path}: {len(parsed.unmatched)} LoRA tensors match no parameter of the "
                         f"model: {shown}{more} (allow partial matches to ignore them)")
    return parsed


class LoraStack:
    """Several LoRAs with strengths, read and checked against a parameter shape map; merges
    them one parameter at a time (so a streamed export never holds a whole model)."""

    def __init__(self, loras: Sequence[LoraSpec], shapes: Shapes, allow_partial: bool = False):
        shapes = {k: tuple(int(d) for d in v) for k, v in shapes.items()}
        self.items: List[Tuple[ParsedLora, float]] = []
        self._by_target: Dict[str, List[Tuple[LoraPatch, float]]] = {}
        for path, strength in loras:
            parsed = read_lora(path, shapes, allow_partial)
            self.items.append((parsed, float(strength)))
            for p in parsed.patches:
                self._by_target.setdefault(p.target, []).append((p, float(strength)))

    @property
    def targets(self) -> List[str]:
        return list(self._by_target)

    @property
    def unmatched(self) -> List[str]:
        return [k for parsed, _ in self.items for k in parsed.unmatched]

    def merged(self, name: str, tensor: Tensor) -> Tensor:
        """`tensor` (parameter `name`) with every LoRA applied (module docstring); the input
        itself when nothing targets it or every strength is 0, else a new tensor of its dtype."""
        todo = [(p, s) for p, s in self._by_target.get(name, []) if s != 0.0]
        if not todo:
            return tensor
        w = tensor.detach().to(torch.float32).clone()
        for patch, strength in todo:
            delta = patch.delta().reshape(w.shape)
            w = w + delta * patch.scale(strength)
        return w.to(tensor.dtype)

    def apply_(self, module: nn.Module) -> List[str]:
        """Merge into `module`'s parameters in place; returns the names changed."""
        changed = []
        with torch.no_grad():
            for name, p in module.named_parameters():
                data = p.data
                new = self.merged(name, data)
                if new is not data:
                    data.copy_(new)
                    changed.append(name)
        return changed


def module_shapes(module: nn.Module) -> Shapes:
    """Parameter name -> shape of a module (meta modules work)."""
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


def apply_loras_(module: nn.Module, loras: Sequence[LoraSpec], allow_partial: bool = False) -> List[str]:
    """Merge LoRAs [(path, strength), ...] into `module`'s parameters in place (float32
    arithmetic, each parameter keeps its dtype); returns the parameter names changed."""
    return LoraStack(loras, module_shapes(module), allow_partial).apply_(module)


def apply_loras(state: Dict[str, Tensor], loras: Sequence[LoraSpec],
                allow_partial: bool = False) -> Dict[str, Tensor]:
    """A new state dict with the LoRAs merged; untouched tensors are shared, not copied."""
    stack = LoraStack(loras, {k: tuple(v.shape) for k, v in state.items()}, allow_partial)
    return {k: stack.merged(k, v) for k, v in state.items()}


def parse_lora_arg(text: str, default_strength: float = 1.0) -> Tuple[str, float]:
    """"FILE[:STRENGTH]" -> (FILE, STRENGTH); a tail that is not a number stays in the path."""
    if ":" in text:
        head, tail = text.rsplit(":", 1)
        try:
            return head, float(tail)
        except ValueError:
            pass
    return text, float(default_strength)


EXPERT_SELECTORS = {"all": None, "high": "dit_high_noise", "low": "dit_low_noise"}


def loras_per_expert(experts: Sequence[str], loras: Optional[Sequence[Tuple[PathLike, float, str]]]
                     ) -> Dict[str, List[LoraSpec]]:
    """[(path, strength, "all"|"high"|"low"), ...] -> expert name -> [(path, strength), ...] in the
    given order. "high"/"low" name dit_high_noise/dit_low_noise and are a ValueError for a
    model with a single DiT."""
    out: Dict[str, List[LoraSpec]] = {e: [] for e in experts}
    for item in loras or []:
        if len(item) == 2:
            path, strength, which = item[0], item[1], "all"
        else:
            path, strength, which = item
        if which not in EXPERT_SELECTORS:
            raise ValueError(f"LoRA {path}: experts must be one of {', '.join(EXPERT_SELECTORS)}, "
                             f"got '{which}'")
        target = EXPERT_SELECTORS[which]
        if target is not None and target not in out:
            raise ValueError(f"LoRA {path}: '{which}' names the {target} expert, but this model has "
                             f"only {', '.join(experts)} (use 'all')")
        for e in experts if target is None else [target]:
            out[e].append((path, float(strength)))
    return out
