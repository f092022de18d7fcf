"""Host memory on a bundle big enough for allocation to matter (mid-ti2v, 133 M parameters):
the allocator policy wanrun reports, identical frames under either policy, and the planner's
host estimate bounding every stage's measured peak RSS, the allocator's retention included
(runtime/host_allocator.h, docs/optimization.md "Host memory allocator")."""
import json
import os
import subprocess
from pathlib import Path

import pytest

WANRUN = os.environ.get("WANRUN")
SOURCE = Path(os.environ.get("WANRT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

REQUEST = ["--size", "256x256", "--frames", "17", "--dtype", "bf16", "--device", "cpu"]
# wanrun plan's stage names for the run report's.
STAGES = {"text_encoder": "text_encoding", "denoise": "denoise:dit", "vae_decode": "vae_decode"}


@pytest.fixture(scope="module")
def mid_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("mid") / "mid-ti2v"
    r = subprocess.run(["/usr/bin/python3", "-m", "wanrt_export", "export", "--random-weights",
                        "--config", "mid-ti2v", "--seed", "0", "--dtype", "bf16", "--out", str(out)],
                       cwd=SOURCE / "models" / "export", capture_output=True, text=True,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode == 0, r.stderr
    return out


def generate(bundle, out, policy):
    r = subprocess.run([WANRUN, "generate", "--model", str(bundle), *REQUEST, "--steps", "2",
                        "--prompt", "a red fox running through fresh snow",
                        "--threads", "2", "--seed", "1", "--no-verify", "--json", "--progress",
                        "none", "--out", str(out)],
                       env=dict(os.environ, WANRT_HOST_ALLOCATOR=policy),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_policies_report_themselves_and_give_identical_frames(mid_bundle, tmp_path):
    tuned = generate(mid_bundle, tmp_path / "tuned.pt", "tuned")
    system = generate(mid_bundle, tmp_path / "system.pt", "system")
    ha = {k: v for k, v in tuned["host_allocator"].items() if k != "cuda_alloc_conf"}
    assert ha == {"allocator": "glibc", "policy": "tuned", "tuned": True,
                  "source": "WANRT_HOST_ALLOCATOR"}
    assert system["host_allocator"]["policy"] == "system"
    assert system["host_allocator"]["tuned"] is False
    assert (tmp_path / "tuned.pt").read_bytes() == (tmp_path / "system.pt").read_bytes()


def test_estimate_bounds_every_stage_peak_and_retention(mid_bundle, tmp_path):
    run = generate(mid_bundle, tmp_path / "x.pt", "tuned")
    r = subprocess.run([WANRUN, "plan", "--model", str(mid_bundle), *REQUEST, "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    stages = {s["name"]: s for s in json.loads(r.stdout)["estimate"]["stages"]}
    for run_name, plan_name in STAGES.items():
        items = {i["name"]: i["bytes"] for i in stages[plan_name]["host_items"]}
        bound = stages[plan_name]["host_total"] - items["reserve"]
        peak = run["stage_peak_rss_bytes"][run_name]
        retained = run["stage_retained_bytes"][run_name]
        assert 0 < peak <= bound, (run_name, peak, bound)
        assert 0 <= retained <= items["allocator retention"], (run_name, retained)
