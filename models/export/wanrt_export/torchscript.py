"""TorchScript calls, with PyTorch's TorchScript deprecation warnings silenced and nothing else.

PyTorch 2.9 and later emit a DeprecationWarning on every `torch.jit.script`, `torch.jit.save`
and `torch.jit.load`, pointing at `torch.export`. wanrt stays on TorchScript on purpose: it is
the format LibTorch's C++ loader (`torch::jit::load`) runs without Python, and the only one that
every LibTorch we support (1.13 to 2.11) reads. The warnings are known and say nothing about
a particular export, so the exporter filters exactly these three messages; every other warning
still shows. docs/export.md explains what the deprecation means for bundles.
"""
import contextlib
import warnings
from typing import Iterator, Union

import torch
import torch.nn as nn

# The messages PyTorch 2.11 uses; matched from their start, so wording after "deprecated" may vary.
DEPRECATION_MESSAGE = r"`torch\.jit\.(script|save|load)` is deprecated"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """A block in which the TorchScript deprecation warnings are not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION_MESSAGE, category=DeprecationWarning)
        yield


def script(module: nn.Module) -> torch.jit.ScriptModule:
    """torch.jit.script without the deprecation warning."""
    with quiet():
        return torch.jit.script(module)


def save(module: torch.jit.ScriptModule, path: str) -> None:
    """torch.jit.save without the deprecation warning."""
    with quiet():
        torch.jit.save(module, path)


def load(path: Union[str, bytes], map_location: str = "cpu") -> torch.jit.ScriptModule:
    """torch.jit.load without the deprecation warning."""
    with quiet():
        return torch.jit.load(path, map_location=map_location)
