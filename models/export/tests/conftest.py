"""Shared pytest fixtures for the exporter tests."""
import os
import sys
from pathlib import Path

import pytest
import torch

EXPORT_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(EXPORT_DIR))

# Two cores are shared with the C++ build; keep each test process on one thread.
torch.set_num_threads(1)


def shared_dir() -> Path:
    """The project's shared/ folder: $WANRT_SHARED, else ../shared beside the repo."""
    env = os.environ.get("WANRT_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def load_tsv(name: str):
    """Official parameter list `name<TAB>AxBxC` as [(name, (A, B, C)), ...] in file order."""
    path = shared_dir() / "wan22" / "state_dict" / name
    if not path.is_file():
        pytest.skip(f"{path} not found (set WANRT_SHARED)")
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.split("x")) if shape else ()))
    return rows


@pytest.fixture
def official_shapes():
    return load_tsv


def pytest_configure(config):
    # The tests call torch.jit directly; PyTorch >= 2.9 warns on every call (see
    # wanrt_export/torchscript.py for why wanrt keeps TorchScript). Only those messages.
    from wanrt_export.torchscript import DEPRECATION_MESSAGE
    config.addinivalue_line("filterwarnings", f"ignore:{DEPRECATION_MESSAGE}:DeprecationWarning")
