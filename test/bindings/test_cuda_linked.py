"""With a LibTorch that has CUDA, the CUDA backend is compiled and linked for real: wanrun and
libwanrt.so carry runtime/cuda's code and load libc10_cuda, libtorch_cuda and cudart. Without
one, nothing CUDA is linked (the sources are only syntax-checked)."""
import os
import subprocess

import pytest

WANRUN = os.environ.get("WANRUN")
LIBWANRT = os.environ.get("WANRT_C_LIBRARY")
HAVE_CUDA = os.environ.get("WANRT_HAVE_CUDA")
pytestmark = pytest.mark.skipif(not (WANRUN and LIBWANRT and HAVE_CUDA),
                                reason="run through ctest (WANRUN etc. not set)")


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return {line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line}


def loaded(path):
    return subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout


def defines(path, symbol):
    out = subprocess.run(["nm", "-C", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    return any(symbol in line for line in out.splitlines())


@pytest.mark.parametrize("binary", ["wanrun", "libwanrt"])
def test_cuda_backend_linked_exactly_when_libtorch_has_cuda(binary):
    path = WANRUN if binary == "wanrun" else LIBWANRT
    libs = loaded(path)
    if HAVE_CUDA == "ON":
        for lib in ("libc10_cuda.so", "libtorch_cuda.so", "libcudart.so"):
            assert lib in libs, f"{path} does not load {lib}:\n{libs}"
        assert "libc10_cuda.so" in needed(path)
        if binary == "wanrun":  # libwanrt.so keeps its C++ symbols local
            assert defines(path, "wanrt::make_cuda_backend(int)")
            assert defines(path, "CudaTransfer")
    else:
        for lib in ("libc10_cuda", "libtorch_cuda", "libcudart"):
            assert lib not in libs
