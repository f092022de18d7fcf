"""libwanrt.so exports the C API and nothing else (no C++ symbol leaks into its ABI)."""
import os
import subprocess
from pathlib import Path

import pytest

LIB = os.environ.get("WANRT_C_LIBRARY")
pytestmark = pytest.mark.skipif(not LIB, reason="run through ctest (WANRT_C_LIBRARY not set)")


def dynamic_symbols(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    # "name@@WANRT_1": the symbol and its version node (wanrt.map)
    return [line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()]


def test_only_wanrt_symbols_are_exported():
    names = dynamic_symbols(LIB)
    api = [n for n in names if n.startswith("wanrt_")]
    # The version node of wanrt.map is an absolute symbol named after the node.
    others = [n for n in names if not n.startswith("wanrt_") and n != "WANRT_1"]
    assert others == []
    header = (Path(os.environ["WANRT_SOURCE_DIR"]) / "bindings" / "c" / "include" / "wanrt" /
              "wanrt.h").read_text()
    declared = {line.split("(")[0].split()[-1].lstrip("*")
                for line in header.splitlines() if line.startswith("WANRT_API")}
    assert set(api) == declared
