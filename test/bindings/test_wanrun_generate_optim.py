"""`wanrun generate` with memory optimization: --auto-optimize, explicit plan flags, an imposed
--vram-budget that forces the automatic fallback, and the errors for plans that cannot run.
Outputs are compared with the plain run's, which offloading must not change (bit for bit)."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

WANRUN = os.environ.get("WANRUN")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

PROMPT = "a paper boat on a rainy street"


def tiny(name):
    if not TINY or not (Path(TINY) / name / "wanrt.yaml").is_file():
        pytest.skip("WANRT_TINY_BUNDLES not set (run through ctest)")
    return Path(TINY) / name


def generate(bundle, out, *extra):
    args = [WANRUN, "generate", "--model", bundle, "--prompt", PROMPT, "--frames", 5,
            "--steps", 2, "--seed", 4, "--threads", 1, "--progress", "none", "--json",
            "--out", out, *extra]
    r = subprocess.run(list(map(str, args)),
                       capture_output=True, text=True, timeout=300)
    return r


def component_bytes(bundle):
    manifest = yaml.safe_load((bundle / "wanrt.yaml").read_text())
    return {name: c["bytes"] for name, c in manifest["components"].items()}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    bundle = tiny("tiny-t2v-moe")
    out = tmp_path_factory.mktemp("plain") / "plain.pt"
    r = generate(bundle, out)
    assert r.returncode == 0, r.stderr
    return bundle, torch.load(out), json.loads(r.stdout)


def test_plain_run_reports_the_resident_plan(plain):
    bundle, _, doc = plain
    plan = doc["plan"]
    assert plan["offload"] == "none" and plan["device"] == "cpu"
    assert plan["fallbacks"] == []
    # Every component resident: the ledger peak is the bundle's stored bytes.
    assert plan["ledger_peak_bytes"] == sum(component_bytes(bundle).values())


def test_vram_budget_forces_a_fallback_with_the_same_frames(plain, tmp_path):
    bundle, frames, _ = plain
    # Below the resident plan; the VAE (not streamable) still fits, a DiT does not fit whole.
    sizes = component_bytes(bundle)
    dits = [b for name, b in sizes.items() if name not in ("text_encoder", "vae")]
    budget = max(sizes["vae"], max(dits) * 3 // 4)
    assert budget < sum(sizes.values())
    r = generate(bundle, tmp_path / "limited.pt", "--vram-budget", budget)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert torch.equal(torch.load(tmp_path / "limited.pt"), frames)
    plan = doc["plan"]
    assert plan["fallbacks"], "the budget should have forced a fallback"
    assert plan["vram_budget_bytes"] == budget
    assert plan["ledger_peak_bytes"] <= budget
    assert plan["offload"] != "none"


def test_explicit_offload_flags_keep_the_frames(plain, tmp_path):
    bundle, frames, _ = plain
    # fp32 fixed: the planner would pick bf16 on a CPU with avx512_bf16, changing the numbers.
    r = generate(bundle, tmp_path / "seq.pt", "--device", "cpu", "--dtype", "fp32",
                 "--offload", "sequential", "--blocks-resident", 1, "--prefetch", 1)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert plan["offload"] == "sequential"
    assert plan["blocks_resident"] == 1
    assert torch.equal(torch.load(tmp_path / "seq.pt"), frames)
    assert plan["ledger_peak_bytes"] < sum(component_bytes(bundle).values())


def test_auto_optimize_plans_and_runs(tmp_path):
    bundle = tiny("tiny-ti2v")
    r = generate(bundle, tmp_path / "auto.pt", "--auto-optimize")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert plan["auto_optimize"] is True
    assert plan["rung"]
    assert plan["device"] == "cpu"
    assert torch.load(tmp_path / "auto.pt").shape[0] == 5


def test_budget_nothing_fits_in_is_exit_5_saying_what_would(tmp_path):
    r = generate(tiny("tiny-ti2v"), tmp_path / "x.pt", "--vram-budget", "1KiB")
    assert r.returncode == 5, r.stderr
    assert "smallest" in r.stderr and "--vram-budget" in r.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("args,code,text", [
    (["--dtype", "fp16", "--device", "cpu"], 4, "fp16"),
    (["--offload", "sometimes"], 2, "--offload"),
    (["--vram-budget", "lots"], 2, "--vram-budget"),
    (["--blocks-resident", "-1", "--offload", "sequential"], 2, "--blocks-resident"),
])
def test_bad_optimization_flags(tmp_path, args, code, text):
    r = generate(tiny("tiny-ti2v"), tmp_path / "x.pt", *args)
    assert r.returncode == code, r.stderr
    assert text in r.stderr
    assert not (tmp_path / "x.pt").exists()


def libtorch_major():
    r = subprocess.run([WANRUN, "--version"], capture_output=True, text=True, timeout=60)
    return int(r.stdout.split("LibTorch ")[1].split(".")[0])


def test_vae_dtype_bf16_decodes_close_to_fp32_or_is_refused_before_work(tmp_path):
    bundle = tiny("tiny-ti2v")
    r = generate(bundle, tmp_path / "fp32.pt", "--auto-optimize")
    assert r.returncode == 0, r.stderr
    assert {c["name"]: c["compute"] for c in json.loads(r.stdout)["plan"]["components"]}[
        "vae"] == "fp32"  # the default, as the official code decodes
    r = generate(bundle, tmp_path / "bf16.pt", "--auto-optimize", "--vae-dtype", "bf16")
    if libtorch_major() < 2:
        # 1.13 has no bf16 nearest-exact upsampling on the CPU: refused by the planner.
        assert r.returncode == 4, r.stderr
        assert "nearest-exact" in r.stderr
        assert not (tmp_path / "bf16.pt").exists()
        return
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["plan"]
    assert {c["name"]: c["compute"] for c in plan["components"]}["vae"] == "bf16"
    a = torch.load(tmp_path / "fp32.pt").int()
    b = torch.load(tmp_path / "bf16.pt").int()
    assert a.shape == b.shape
    diff = (a - b).abs().double()
    # bf16 keeps 8 significant bits: ~0.4 % per rounding, ~2 % over the decoder's ~30
    # convolutions in quadrature, about 2.5 of the 127.5 levels of a full-scale value.
    assert 0 < diff.mean() <= 2.5
