"""Bundles across PyTorch versions: a bundle exported with one PyTorch runs under this build's
LibTorch and gives the frames a bundle exported with this build's own PyTorch gives.

The test runs under the build's PyTorch (the pinned 2.11 for the default presets, Debian's
1.13 for PRESET=debian). The "other" PyTorch is whichever of the two this one is not: Debian's
python3-torch (plain /usr/bin/python3) or the pinned torch 2.11 install of
scripts/setup-libtorch.sh. Without it the cross-version cases skip, saying why.
"""
import os
import subprocess
from pathlib import Path

import pytest
import torch

WANRUN = os.environ.get("WANRUN")
SOURCE = Path(os.environ.get("WANRT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
EXPORT_DIR = SOURCE / "models" / "export"
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

TORCH_HOME = Path(os.environ.get("WANRT_TORCH_HOME") or
                  Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wanrt")


def _version_tuple(version: str):
    return tuple(int(p) for p in version.split("+")[0].split(".")[:2])


def python_env(pythonpath):
    """Environment for the exporter: PYTHONPATH set to `pythonpath` (None: removed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def torch_version(pythonpath):
    r = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                       env=python_env(pythonpath), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def other_torch():
    """(PYTHONPATH, version) of a PyTorch other than the running one, or a skip."""
    mine = _version_tuple(torch.__version__)
    candidates = [None]  # Debian's python3-torch
    pinned = TORCH_HOME / "torch-2.11.0"
    if (pinned / ".complete").is_file():
        candidates.append(pinned)
    for path in candidates:
        version = torch_version(path)
        if version and _version_tuple(version) != mine:
            return path, version
    pytest.skip(f"no PyTorch other than {torch.__version__} here (Debian's python3-torch, or "
                f"the pinned install at {pinned} from scripts/setup-libtorch.sh)")


def export(pythonpath, out: Path, attention: str, fmt: int = 2):
    r = subprocess.run(["/usr/bin/python3", "-m", "wanrt_export", "export", "--random-weights",
                        "--config", "tiny-ti2v", "--seed", "0", "--out", str(out),
                        "--attention", attention, "--format", str(fmt)],
                       cwd=EXPORT_DIR, env=python_env(pythonpath), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # Nothing but our own progress lines: TorchScript's deprecation warnings are filtered and
    # nothing else may warn.
    assert "Warning" not in r.stderr, r.stderr
    return out


def generate(bundle: Path, out: Path):
    return subprocess.run([WANRUN, "generate", "--model", str(bundle), "--prompt", "a red fox",
                           "--size", "64x64", "--frames", "5", "--steps", "2", "--seed", "3",
                           "--device", "cpu", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


def frames(bundle: Path, out: Path) -> torch.Tensor:
    r = generate(bundle, out)
    assert r.returncode == 0, r.stderr
    return torch.load(out)


def test_math_bundles_from_either_pytorch_give_identical_frames(tmp_path):
    path, version = other_torch()
    own = frames(export(os.environ.get("PYTHONPATH"), tmp_path / "own", "math"), tmp_path / "own.pt")
    other = frames(export(path, tmp_path / "other", "math"), tmp_path / "other.pt")
    assert own.dtype == torch.uint8 and own.shape == (5, 64, 64, 3)
    assert torch.equal(own, other), f"bundle from torch {version} differs from one from {torch.__version__}"


def test_format_1_and_format_2_bundles_give_identical_frames(tmp_path):
    mine = os.environ.get("PYTHONPATH")
    v2 = frames(export(mine, tmp_path / "v2", "math"), tmp_path / "v2.pt")
    v1 = frames(export(mine, tmp_path / "v1", "math", fmt=1), tmp_path / "v1.pt")
    assert torch.equal(v1, v2)


def test_a_damaged_weights_file_is_a_bundle_error_before_any_output(tmp_path):
    bundle = export(os.environ.get("PYTHONPATH"), tmp_path / "b", "math")
    weights = bundle / "dit.safetensors"
    os.truncate(weights, weights.stat().st_size - 64)
    out = tmp_path / "x.mp4"
    r = subprocess.run([WANRUN, "generate", "--model", str(bundle), "--prompt", "a red fox",
                        "--size", "64x64", "--frames", "5", "--steps", "2", "--no-verify",
                        "--device", "cpu", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, (r.returncode, r.stderr)  # bundle error (README: exit codes)
    assert "dit.safetensors" in r.stderr and "truncated" in r.stderr, r.stderr
    assert not out.exists() and list(tmp_path.glob("x*")) == []


def test_sdpa_bundles_run_where_libtorch_has_sdpa_and_are_refused_clearly_elsewhere(tmp_path):
    if _version_tuple(torch.__version__) >= (2, 1):
        # Same weights, fused attention. One DiT forward agrees to 1e-5 relative
        # (models/export/tests/test_dit.py); two sampling steps and the VAE of a random tiny
        # model amplify that to a few LSB in places (measured: max 5, mean 0.6, at 2.11).
        math_frames = frames(export(os.environ.get("PYTHONPATH"), tmp_path / "m", "math"), tmp_path / "m.pt")
        sdpa_bundle = export(os.environ.get("PYTHONPATH"), tmp_path / "s", "sdpa")
        assert "attention: sdpa" in (sdpa_bundle / "wanrt.yaml").read_text()
        sdpa_frames = frames(sdpa_bundle, tmp_path / "s.pt")
        diff = (sdpa_frames.int() - math_frames.int()).abs()
        assert diff.max().item() <= 8 and diff.float().mean().item() <= 1.0, \
            f"SDPA and math bundles differ by up to {diff.max().item()} LSB"
        return
    path, version = other_torch()
    if _version_tuple(version) < (2, 1):
        pytest.skip(f"neither torch {torch.__version__} nor {version} has SDPA with scale")
    bundle = export(path, tmp_path / "sdpa", "sdpa")
    r = generate(bundle, tmp_path / "x.pt")
    assert r.returncode == 3, (r.returncode, r.stderr)  # bundle error (README: exit codes)
    assert "LibTorch 2.1 or later" in r.stderr and "--attention math" in r.stderr, r.stderr
    assert not (tmp_path / "x.pt").exists()
