"""`wanrun generate --ranks N`: N local processes meeting on loopback. Rank 0 alone writes the
video and the report, which equal the one-process run's; a rank that dies makes the whole run
fail in bounded time, with no output and no process left behind."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

WANRUN = os.environ.get("WANRUN")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

PROMPT = "a red fox running through fresh snow"


def tiny(name):
    if not TINY or not (Path(TINY) / name / "wanrt.yaml").is_file():
        pytest.skip("WANRT_TINY_BUNDLES not set (run through ctest)")
    return Path(TINY) / name


def generate(out, *options, env=None, timeout=180):
    return subprocess.run([WANRUN, "generate", "--model", str(tiny("tiny-ti2v")), "--prompt",
                           PROMPT, "--steps", "3", "--frames", "5", "--guidance", "4",
                           "--threads", "1", "--progress", "none", "--no-verify", *options,
                           "--out", str(out)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def processes_naming(text):
    """Process ids whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


@pytest.mark.parametrize("common, options, layout", [
    ([], [], "2 ranks: 2 CFG"),
    ([], ["--cfg-parallel", "1"], "2 ranks: 2 sequence"),
    # Planned: the ranks agree on the machine first, then each plans (the same plan).
    (["--auto-optimize"], [], "2 ranks: 2 CFG"),
])
def test_two_ranks_write_what_one_process_writes(tmp_path, common, options, layout):
    one = generate(tmp_path / "one.pt", "--json", *common)
    assert one.returncode == 0, one.stderr
    two = generate(tmp_path / "two.pt", "--ranks", "2", "--json", *common, *options)
    assert two.returncode == 0, two.stderr
    report = json.loads(two.stdout)  # one report: only rank 0 prints
    assert report["plan"]["components"] == json.loads(one.stdout)["plan"]["components"]
    assert report["parallel"]["layout"] == layout
    assert report["parallel"]["backend"] == "gloo"  # ranks on the CPU
    assert report["parallel"]["comm_seconds"] > 0
    assert (tmp_path / "two.pt.json").is_file()
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    if "--cfg-parallel" in options:
        # Sequence parallel rounds products over fewer rows: a pixel may move by one level.
        assert (a.int() - b.int()).abs().max() <= 1
    else:
        assert torch.equal(a, b)  # the same passes on the same tensors


def test_a_killed_rank_fails_the_run_with_no_output(tmp_path):
    out = tmp_path / "video.mp4"
    # Rank 1 kills itself (SIGKILL, nothing it can clean up) at the first denoising step.
    r = generate(out, "--ranks", "2", env={"WANRT_TEST_SIGNAL_AT": "denoise:1:1:KILL:1",
                                            "WANRT_DIST_TIMEOUT": "30"})
    assert r.returncode != 0
    assert "the other ranks were stopped and no output was written" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no video, no temporary, no report
    assert processes_naming(str(out)) == []


def test_rank_options_are_checked_before_anything_starts(tmp_path):
    r = generate(tmp_path / "v.mp4", "--ranks", "0")
    assert r.returncode == 2 and "--ranks 0" in r.stderr
    r = generate(tmp_path / "v.mp4", "--ranks", "3", "--cfg-parallel", "2")
    assert r.returncode == 2 and "does not divide --ranks 3" in r.stderr
    r = generate(tmp_path / "v.mp4", "--ranks", "3",
                 env={"WORLD_SIZE": "2", "RANK": "0", "WANRT_STORE_FILE": str(tmp_path / "s")})
    assert r.returncode == 2 and "WORLD_SIZE=2" in r.stderr
    assert not (tmp_path / "v.mp4").exists()


def test_plan_per_rank(tmp_path):
    def plan(*options):
        r = subprocess.run([WANRUN, "plan", "--profile", "wan2.2-ti2v-5b", "--json",
                            "--ram", "64GiB", "--gpu-count", "0", *options],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode in (0, 4), r.stderr
        return json.loads(r.stdout)
    one, two = plan(), plan("--ranks", "2", "--cfg-parallel", "1")
    assert two["workload"]["ranks"] == 2 and two["workload"]["seq_ranks"] == 2
    assert one["workload"]["ranks"] == 1
    # Each of two ranks on the machine gets half its RAM.
    assert two["machine"]["ram_available"] * 2 == pytest.approx(one["machine"]["ram_available"],
                                                                abs=2)
