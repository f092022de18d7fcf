"""`wanrun plan` and `wanrun doctor`: the acceptance commands of the optimization issue, the
--json document, user settings, errors and exit codes (0 fits, 2 usage, 4 resources)."""
import json
import os
import subprocess
from pathlib import Path

import pytest

WANRUN = os.environ.get("WANRUN")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

GIB = 1 << 30
A14B_720P = ["--profile", "wan2.2-t2v-a14b", "--size", "1280x720", "--frames", "81"]


def run(*args, timeout=120):
    return subprocess.run([WANRUN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def plan_json(*args):
    r = run("plan", *args, "--json")
    assert r.stdout, r.stderr
    return r, json.loads(r.stdout)


def test_acceptance_a14b_fits_24gib_with_a_reason_for_each_choice():
    r = run("plan", *A14B_720P, "--vram", "24GiB", "--ram", "64GiB")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "result    fits" in out
    for setting in ["device = cuda:0", "dtype = bf16", "attention = ", "offload = sequential",
                    "blocks_resident:dit_high_noise = ", "text_encoder = ", "vae = ",
                    "frame_chunking = ", "host_residency = "]:
        assert setting in out, setting
    # Each reason carries numbers: the ladder's peaks against the 24 GiB budget.
    assert "24.00 GiB" in out
    assert "guidance" not in out


def test_acceptance_a14b_8gib_16gib_prints_guidance_and_exits_4():
    r = run("plan", *A14B_720P, "--vram", "8GiB", "--ram", "16GiB")
    assert r.returncode == 4
    assert "guidance: this request does not fit; what would:" in r.stdout
    assert "host RAM is short" in r.stdout
    assert "of RAM would fit" in r.stdout
    assert "error [resources]" in r.stderr


def test_json_document_structure_and_budgets():
    r, doc = plan_json(*A14B_720P, "--vram", "24GiB", "--ram", "64GiB", "--gpu-cc", "8.9")
    assert r.returncode == 0
    assert doc["model_id"] == "wan2.2-t2v-a14b"
    assert doc["workload"] == {"width": 1280, "height": 720, "frames": 81, "image": False,
                               "ranks": 1, "seq_ranks": 1}
    assert doc["feasible"] is True
    assert doc["machine"]["gpus"][0]["compute_capability"] == "8.9"
    assert doc["machine"]["gpus"][0]["total_bytes"] == 24 * GIB
    plan = doc["plan"]
    assert plan["offload"] == "sequential"
    assert 0 < plan["blocks_resident"] < 40
    assert [c["name"] for c in plan["components"]] == [
        "text_encoder", "dit_high_noise", "dit_low_noise", "vae"]
    est = doc["estimate"]
    budget = est["budget"]
    assert budget["device_capacity"] == 24 * GIB
    assert budget["device_reserve"] == 1024 << 20
    assert est["device_peak"] <= budget["device_capacity"]
    assert est["host_peak"] <= budget["host_capacity"]
    names = [s["name"] for s in est["stages"]]
    assert names == ["text_encoding", "denoise:dit_high_noise", "denoise:dit_low_noise",
                     "vae_decode"]
    for stage in est["stages"]:
        device_sum = sum(item["bytes"] for item in stage["device_items"])
        assert device_sum == stage["device_total"]
        assert stage["device_total"] <= budget["device_capacity"]
        kinds = {item["kind"] for item in stage["device_items"]}
        assert {"weights", "reserve"} <= kinds
    assert max(s["device_total"] for s in est["stages"]) == est["device_peak"]
    assert all({"setting", "value", "reason", "user_set"} <= set(d) for d in doc["reasons"])
    assert doc["ladder"][0]["rung"] == "resident"
    assert doc["ladder"][-1]["fits"] is True
    fallbacks = [f["name"] for f in doc["independence"]["fallbacks"]]
    assert "text encoder on the CPU" in fallbacks and "VAE on the CPU" in fallbacks
    assert doc["guidance"] == []


def test_user_settings_are_kept_and_marked():
    r, doc = plan_json(*A14B_720P, "--vram", "80GiB", "--ram", "128GiB", "--offload",
                       "sequential", "--blocks-resident", "12", "--prefetch", "2",
                       "--text-encoder", "cpu")
    assert r.returncode == 0
    plan = doc["plan"]
    assert plan["offload"] == "sequential"
    assert plan["text_encoder"] == "cpu"
    experts = [c for c in plan["components"] if c["name"].startswith("dit")]
    assert all(c["blocks_resident"] == 12 and c["prefetch"] == 2 for c in experts)
    assert set(plan["user_set"]) == {"offload", "blocks_resident", "prefetch", "text_encoder"}
    reasons = {d["setting"]: d for d in doc["reasons"]}
    assert reasons["offload"]["user_set"] is True
    assert reasons["text_encoder"]["user_set"] is True


def test_a_user_setting_that_cannot_fit_is_reported_not_replaced():
    r, doc = plan_json(*A14B_720P, "--vram", "24GiB", "--ram", "64GiB", "--offload", "none")
    assert r.returncode == 4
    assert doc["plan"]["offload"] == "none"
    assert any("the settings you gave (offload)" in g for g in doc["guidance"])


def test_simulated_machine_without_gpu_plans_for_the_cpu():
    r, doc = plan_json("--profile", "wan2.2-ti2v-5b", "--gpu-count", "0", "--ram", "64GiB",
                       "--cpu-bf16", "yes")
    assert r.returncode == 0
    assert doc["plan"]["device"] == "cpu"
    assert doc["plan"]["dtype"] == "bf16"
    assert doc["estimate"]["device_peak"] == 0


def test_optim_config_biases_and_errors(tmp_path):
    cfg = tmp_path / "optim.yaml"
    cfg.write_text("performance_priority: memory\n")
    r, doc = plan_json("--profile", "wan2.2-ti2v-5b", "--vram", "80GiB", "--ram", "64GiB",
                       "--optim-config", cfg)
    assert r.returncode == 0
    assert doc["plan"]["offload"] != "none"
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_chunk_size: 4\nvram_margin: 3\n")
    r = run("plan", "--profile", "wan2.2-ti2v-5b", "--optim-config", bad)
    assert r.returncode == 2
    assert "bad.yaml:2: key 'vram_margin': unknown key" in r.stderr


@pytest.mark.parametrize("args, text", [
    (["--profile", "wan9-nothing"], "known profiles: wan2.2-i2v-a14b"),
    ([], "exactly one of --model and --profile"),
    (["--profile", "wan2.2-ti2v-5b", "--vram", "lots"], "--vram 'lots' is not a byte size"),
    (["--profile", "wan2.2-t2v-a14b", "--frames", "80"], "80 frames is not 1 + 4n"),
    (["--profile", "wan2.2-t2v-a14b", "--size", "1000x720"], "not a positive multiple of 16"),
    (["--profile", "wan2.2-ti2v-5b", "--offload", "partial"], "--offload 'partial'"),
])
def test_usage_errors_exit_2(args, text):
    r = run("plan", *args)
    assert r.returncode == 2
    assert text in r.stderr


def test_details_list_formulas():
    r = run("plan", "--profile", "wan2.2-ti2v-5b", "--vram", "24GiB", "--ram", "64GiB",
            "--image", "--details")
    assert r.returncode == 0
    assert "e0 per-token modulation" in r.stdout
    assert "decoder cache" in r.stdout
    assert "vae_encode" in r.stdout


def test_plan_from_a_bundle_directory():
    if not TINY or not (Path(TINY) / "tiny-ti2v" / "wanrt.yaml").is_file():
        pytest.skip("WANRT_TINY_BUNDLES not set (run through ctest)")
    r, doc = plan_json("--model", Path(TINY) / "tiny-ti2v", "--vram", "8GiB", "--ram", "16GiB")
    assert r.returncode == 0
    assert doc["model_id"] == "wan2.2-ti2v-tiny"
    assert doc["rung"] == "resident"


def test_doctor_reports_the_machine_and_the_three_models():
    r = run("doctor")
    assert r.returncode == 0, r.stderr
    for text in ["CPU", "RAM", "CUDA      backend", "wan2.2-ti2v-5b", "wan2.2-t2v-a14b",
                 "wan2.2-i2v-a14b"]:
        assert text in r.stdout, text


def test_doctor_json_on_a_simulated_large_machine():
    r = run("doctor", "--vram", "80GiB", "--ram", "128GiB", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert isinstance(doc["cuda_backend_built"], bool)
    assert doc["simulated"] is True
    assert doc["machine"]["ram_total"] == 128 * GIB
    models = {m["model_id"]: m for m in doc["models"]}
    assert set(models) == {"wan2.2-ti2v-5b", "wan2.2-t2v-a14b", "wan2.2-i2v-a14b"}
    assert all(m["feasible"] for m in models.values())
    assert models["wan2.2-ti2v-5b"]["rung"] == "resident"
    assert "offload model" in models["wan2.2-t2v-a14b"]["how"]
