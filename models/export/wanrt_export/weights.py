"""Format 2 bundles: a component's parameters in a safetensors file beside its TorchScript code.

Writing: the parameters go into `<component>.safetensors` (see `write_weights` for the
layout the runtime's memory mapping relies on), then every parameter of the scripted module
is replaced by a placeholder, a one-element tensor expanded to the parameter's shape (stride 0),
so the scripted file keeps each parameter's name, shape and dtype in a few bytes. Buffers
(derived constants) stay in the TorchScript file.

Reading (Python reference, tests): `component_state_dict` and `load_component` give the same
result for a format 1 and a format 2 component.
"""
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from . import safetensors_io as st
from . import torchscript as ts

PathLike = Union[str, Path]

# The data section starts at a multiple of this (a cache line); every tensor then starts at a
# multiple of its element size because wider dtypes come first within each group (see
# weight_order), so the runtime can use every tensor in place.
DATA_ALIGNMENT = 64
# __metadata__ keys: which component a file belongs to (catches swapped files without hashing).
META_COMPONENT = "wanrt_component"
META_FORMAT = "wanrt_format"


def _block_of(name: str, blocks_attr: Optional[str]) -> int:
    prefix = f"{blocks_attr}." if blocks_attr else None
    if prefix and name.startswith(prefix):
        return int(name[len(prefix):].split(".", 1)[0])
    return -1


def weight_order(module: nn.Module, blocks_attr: Optional[str]) -> List[Tuple[str, torch.Tensor]]:
    """The parameters in file order: everything outside the blocks first, then block 0, 1, ...
    (each block one contiguous byte range, which the runtime's disk tier pages in and out as a
    unit); within each group wider dtypes first, otherwise in module order."""
    params = list(module.named_parameters())  # tied parameters appear once
    return sorted(params, key=lambda item: (_block_of(item[0], blocks_attr), -item[1].element_size()))


def write_weights(module: nn.Module, path: PathLike, component: str, blocks_attr: Optional[str]) -> None:
    """Write the parameters of `module` to safetensors file `path` in weight_order."""
    tensors = {name: p.detach() for name, p in weight_order(module, blocks_attr)}
    st.save_file(tensors, path, metadata={META_COMPONENT: component, META_FORMAT: "2"},
                 alignment=DATA_ALIGNMENT)


def strip_parameters_(scripted: torch.jit.ScriptModule, module: nn.Module) -> torch.jit.ScriptModule:
    """Replace every parameter slot of `scripted` (the scripted `module`) by a placeholder of
    the same shape and dtype (stride 0 over one element), in place. `module` itself keeps its
    tensors (it may be the caller's); slots that share a parameter share the placeholder."""
    placeholders: Dict[int, torch.Tensor] = {}
    for mod_name, mod in module.named_modules():
        target = scripted
        for part in mod_name.split(".") if mod_name else []:
            target = getattr(target, part)
        for leaf, p in mod._parameters.items():
            if p is None:
                continue
            ph = placeholders.setdefault(id(p), nn.Parameter(torch.zeros(1, dtype=p.dtype).expand(p.shape),
                                                             requires_grad=p.requires_grad))
            target._c.setattr(leaf, ph)
    return scripted


def _set_slot(scripted: torch.jit.ScriptModule, name: str, value: torch.Tensor) -> None:
    """Replace the attribute slot `name` ("blocks.0.ffn.0.weight") of a scripted module
    (assigning .data would not reach the scripted code)."""
    *path, leaf = name.split(".")
    target = scripted
    for part in path:
        target = getattr(target, part)
    target._c.setattr(leaf, value)


def strip_scripted_(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """strip_parameters_ for a scripted module on its own (e.g. one loaded from a format 1
    file): every parameter slot gets a placeholder."""
    for name, p in list(scripted.named_parameters()):
        _set_slot(scripted, name, nn.Parameter(torch.zeros(1, dtype=p.dtype).expand(p.shape),
                                               requires_grad=p.requires_grad))
    return scripted


def component_state_dict(root: PathLike, entry: dict) -> Dict[str, torch.Tensor]:
    """The state dict of a bundle component (parameters and buffers, stored dtypes), from its
    TorchScript file and, in format 2, its weights file."""
    return {k: v.detach() for k, v in load_component(root, entry).state_dict().items()}


def load_component(root: PathLike, entry: dict) -> torch.jit.ScriptModule:
    """A bundle component's scripted module with its real parameters (format 1 or 2)."""
    root = Path(root)
    scripted = ts.load(str(root / entry["file"]))
    weights = entry.get("weights")
    if weights:
        with st.SafetensorsFile(root / weights) as f:
            for name, p in list(scripted.named_parameters()):
                t = f.get(name)
                if t.shape != p.shape or t.dtype != p.dtype:
                    raise ValueError(f"{root / weights}: tensor '{name}' is {t.dtype}{list(t.shape)}, "
                                     f"the module's parameter {p.dtype}{list(p.shape)}")
                # As a parameter like the placeholder (requires_grad decides kernels, e.g. SDPA's).
                _set_slot(scripted, name, nn.Parameter(t, requires_grad=p.requires_grad))
    return scripted
