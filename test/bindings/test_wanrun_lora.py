"""wanrun's LoRA and few-step surface: --lora/--lora-high/--lora-low, --preset lightning,
inspect --lora and plan --lora, with their errors and exit codes (docs/lora.md). The LoRA files
are the fixtures `tiny-bundles` writes under loras/."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

WANRUN = os.environ.get("WANRUN")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")


def run(*args, timeout=120):
    return subprocess.run([WANRUN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def tiny(name):
    if not TINY or not (Path(TINY) / name).exists():
        pytest.skip("WANRT_TINY_BUNDLES not set (run through ctest)")
    return Path(TINY) / name


def lora(name):
    return tiny("loras") / name


def generate(tmp_path, bundle, *extra):
    out = tmp_path / "frames.pt"
    r = run("generate", "-m", tiny(bundle), "-p", "a lantern in the fog", "--seed", "3",
            "--progress", "none", "--json", "-o", out, *extra)
    return r, out


def test_generate_with_loras_reports_them_and_changes_the_frames(tmp_path):
    base, base_out = generate(tmp_path, "tiny-ti2v")
    assert base.returncode == 0, base.stderr
    base_frames = torch.load(base_out)
    r, out = generate(tmp_path, "tiny-ti2v", "--lora", f"{lora('ti2v-official.safetensors')}:0.8",
                      "--lora", lora("ti2v-diffusers.safetensors"))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    files = report["loras"]["files"]
    assert [f["strength"] for f in files] == [0.8, 1.0]
    assert files[1]["layouts"] == ["lora_A/lora_B"]
    merges = report["loras"]["merges"]
    assert [m["component"] for m in merges] == ["dit"]
    assert merges[0]["tensors"] > 0 and merges[0]["unmatched_keys"] == []
    assert not torch.equal(torch.load(out), base_frames)
    assert report["loras"] is not None and base.stdout and json.loads(base.stdout)["loras"] is None


def test_lightning_preset_runs_four_steps_with_one_pass_each(tmp_path):
    r, _ = generate(tmp_path, "tiny-t2v-moe", "--preset", "lightning",
                    "--lora-high", lora("t2v-moe-high.safetensors"),
                    "--lora-low", f"{lora('t2v-moe-low.safetensors')}:0.5")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    req = report["request"]
    assert (req["preset"], req["sampler"], req["steps"], req["shift"]) == ("lightning", "lightning", 4, 5.0)
    assert req["guidance"] == {"low_noise": 1.0, "high_noise": 1.0}
    assert report["plan"]["chunking"]["dit_calls"] == 4
    assert [f["experts"] for f in report["loras"]["files"]] == ["high", "low"]
    # The high-noise expert is merged when it loads; the low one only if the run reaches it.
    assert "dit_high_noise" in [m["component"] for m in report["loras"]["merges"]]


@pytest.mark.parametrize("args, code, words", [
    (["--lora", "style.safetensors:strong"], 2, ["'strong' is not a number"]),
    (["--lora", "/no/such/file.safetensors"], 2, ["not found"]),
    (["--lora-high", "LORA:ti2v-official.safetensors"], 2, ["single DiT"]),
    (["--lora", "LORA:other-family.safetensors"], 3, ["does not fit", "[64, 64]"]),
    (["--lora", "LORA:partial.safetensors"], 3, ["not_a_module", "--lora-allow-partial"]),
    (["--preset", "turbo"], 2, ["turbo"]),
])
def test_bad_lora_input_is_a_clear_error(tmp_path, args, code, words):
    args = [str(lora(a[5:])) if a.startswith("LORA:") else a for a in args]
    r, out = generate(tmp_path, "tiny-ti2v", *args)
    assert r.returncode == code, r.stderr
    for w in words:
        assert w in r.stderr
    assert not out.exists()


def test_partial_match_when_allowed(tmp_path):
    r, _ = generate(tmp_path, "tiny-ti2v", "--lora", lora("partial.safetensors"),
                    "--lora-allow-partial")
    assert r.returncode == 0, r.stderr
    merges = json.loads(r.stdout)["loras"]["merges"]
    assert len(merges[0]["unmatched_keys"]) == 2


def test_inspect_lora_reports_layout_rank_scale_and_matches():
    r = run("inspect", "--lora", lora("ti2v-official.safetensors"), tiny("tiny-ti2v"), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["layouts"] == ["lora_down/lora_up", "diff"]
    assert doc["prefix"] == "diffusion_model."
    assert doc["rank"] == {"min": 4, "max": 4}
    assert doc["effective_scale"] == {"min": 0.5, "max": 0.5}  # the fixture's alpha 2 / rank 4
    dit = doc["bundle"]["dits"]["dit"]
    assert dit["matched_modules"] == doc["modules"] and dit["unmatched_keys"] == []
    text = run("inspect", "--lora", lora("ti2v-diffusers.safetensors"))
    assert text.returncode == 0, text.stderr
    assert "diffusers' (mapped onto the official ones)" in text.stdout
    assert "alpha / rank = 1" in text.stdout
    assert run("inspect").returncode == 2


def test_plan_counts_the_lora():
    r = run("plan", "--model", tiny("tiny-ti2v"), "--lora", lora("ti2v-official.safetensors"),
            "--details")
    assert r.returncode == 0, r.stderr
    assert "dit LoRA merge" in r.stdout
    assert "LoRAs merged at load" in r.stdout
