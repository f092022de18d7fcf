"""The wanrt Python package from the build tree: frames equal wanrun's, dicts for inspect and
plan, one exception class per category with its hint, the GIL released while generating,
Ctrl-C cancelling, two threads on one bundle.

This process does not import torch: the package may be built against another LibTorch than
the Python torch installed here, and two LibTorch versions do not share a process."""
import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

wanrt = pytest.importorskip("wanrt", reason="PYTHONPATH must hold <build>/python (ctest sets it)")

TINY = Path(os.environ.get("WANRT_TINY_BUNDLES", "/nonexistent"))
WANRUN = os.environ.get("WANRUN")
BUNDLE = TINY / "tiny-ti2v"
REQUEST = dict(prompt="a heron over a lake", frames=9, steps=3, seed=5)


@pytest.fixture(scope="module")
def bundle():
    return wanrt.Bundle(str(BUNDLE), threads=1)


def read_png_dir(path):
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(path.glob("*.png"))])


def wanrun_frames(tmp_path, bundle_dir, **request):
    out = tmp_path / "wanrun_frames"  # PNG frames: lossless, readable without torch
    subprocess.run([WANRUN, "generate", "--model", str(bundle_dir), "--prompt", request["prompt"],
                    "--frames", str(request["frames"]), "--steps", str(request["steps"]),
                    "--seed", str(request["seed"]), "--threads", "1", "--out", str(out) + "/",
                    "--progress", "none"], check=True, capture_output=True)
    return read_png_dir(out)


def test_frames_equal_the_cli(bundle, tmp_path):
    progress = []
    streamed = []
    frames, report = bundle.generate(**REQUEST, on_progress=lambda *e: progress.append(e),
                                     on_frames=streamed.append)
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == 9
    assert np.array_equal(frames, wanrun_frames(tmp_path, BUNDLE, **REQUEST))
    # The streamed pieces are the same frames, in order.
    assert np.array_equal(np.concatenate(streamed), frames)
    assert [p for p in progress if p[0] == "denoise"][-1] == ("denoise", 3, 3)
    assert report["request"]["frames"] == 9 and report["request"]["seed"] == 5
    assert report["expert_trace"] == ["dit"] * 3


def test_inspect_plan_and_file_output(bundle, tmp_path):
    info = bundle.inspect()
    assert info["task"] == "ti2v"
    assert {c["name"] for c in info["components"]} == {"text_encoder", "dit", "vae"}
    plan = bundle.plan(prompt="x", frames=9)
    assert plan["feasible"] is True and plan["workload"]["frames"] == 9
    out = tmp_path / "clip"
    frames, _ = bundle.generate(**REQUEST, out=str(out) + "/")
    assert np.array_equal(read_png_dir(out), frames)
    none, report = bundle.generate(**REQUEST, keep_frames=False)
    assert none is None and report["plan"]["chunking"]["dit_calls"] == 6


def test_every_category_is_its_own_exception_with_a_hint(bundle):
    with pytest.raises(wanrt.UsageError) as usage:
        bundle.generate(prompt="x", frames=6)
    assert isinstance(usage.value, ValueError) and usage.value.hint
    with pytest.raises(wanrt.UsageError):
        bundle.generate(prompt="x", frames=5, image=np.zeros((4, 4), np.uint8))
    with pytest.raises(wanrt.BundleError):
        wanrt.Bundle("/nonexistent/bundle")
    with pytest.raises(wanrt.ResourcesError):
        wanrt.Bundle(str(BUNDLE), device="cpu", dtype="fp16")
    tight = wanrt.Bundle(str(BUNDLE), threads=1, vram_budget=1024, fallback=False)
    with pytest.raises(wanrt.OutOfMemoryError) as oom:
        tight.generate(**REQUEST)
    assert isinstance(oom.value, MemoryError) and oom.value.category == "out-of-memory"
    assert all(issubclass(c, wanrt.Error) for c in (wanrt.CancelledError, wanrt.InternalError))


def test_an_exception_in_a_callback_stops_the_run_and_propagates(bundle):
    def boom(stage, step, total):
        if stage == "denoise" and step == 1:
            raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        bundle.generate(**REQUEST, on_progress=boom)


def test_ctrl_c_cancels_the_run(bundle):
    first_step = threading.Event()
    steps = []

    def on_progress(stage, step, total):
        if stage == "denoise":
            steps.append(step)
            first_step.set()

    def interrupt():
        first_step.wait(30)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    killer.start()
    with pytest.raises(KeyboardInterrupt):
        bundle.generate(prompt="x", frames=9, steps=40, seed=1, on_progress=on_progress)
    killer.join()
    assert 0 < max(steps) < 40


def test_the_gil_is_released_while_generating(bundle):
    done = threading.Event()
    result = {}

    def work():
        result["frames"], _ = bundle.generate(prompt="x", frames=9, steps=20, seed=2)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    spins = 0
    while not done.is_set():
        spins += 1  # runs only while the worker's C++ code does not hold the GIL
    worker.join()
    assert result["frames"].shape[0] == 9
    assert spins > 10000


def test_two_threads_on_one_bundle_get_the_frames_of_one_run_alone(bundle):
    alone, _ = bundle.generate(**REQUEST)
    out = [None, None]

    def work(i):
        out[i], _ = bundle.generate(**REQUEST)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(o, alone) for o in out)


def test_the_host_allocator_is_decided_once_per_process(bundle):
    # The fixture opened a bundle: the library default (tuned) decided, unless the environment
    # said otherwise.
    decided = os.environ.get("WANRT_HOST_ALLOCATOR") or "tuned"
    other = "system" if decided == "tuned" else "tuned"
    with pytest.raises(wanrt.UsageError) as e:
        wanrt.set_host_allocator("bogus")
    assert "system" in e.value.hint
    wanrt.set_host_allocator(decided)  # asking for what is in effect is fine
    with pytest.raises(wanrt.UsageError, match=f"already set up as '{decided}'"):
        wanrt.set_host_allocator(other)


def test_loras_per_expert_and_the_lightning_preset():
    loras = TINY / "loras"
    b = wanrt.Bundle(str(TINY / "tiny-t2v-moe"), threads=1,
                     loras_high=[str(loras / "t2v-moe-high.safetensors")],
                     loras_low=[f"{loras / 't2v-moe-low.safetensors'}:0.5"])
    frames, report = b.generate(prompt="a heron over a lake", frames=5, seed=5, preset="lightning")
    assert frames.shape[0] == 5
    assert report["request"]["steps"] == 4 and report["request"]["preset"] == "lightning"
    assert report["plan"]["chunking"]["dit_calls"] == 4
    assert [f["strength"] for f in report["loras"]["files"]] == [1.0, 0.5]
    with pytest.raises(wanrt.UsageError, match="not a number"):
        wanrt.Bundle(str(BUNDLE), loras=["x.safetensors:lots"])
    with pytest.raises(wanrt.BundleError, match="does not fit"):
        wanrt.Bundle(str(BUNDLE), loras=[str(loras / "other-family.safetensors")])


def test_vae_dtype_is_a_plan_setting():
    with pytest.raises(wanrt.UsageError, match="vae-dtype 'fp9'"):
        wanrt.Bundle(str(BUNDLE), vae_dtype="fp9")
    try:  # the bundle plans its defaults when it opens
        half = wanrt.Bundle(str(BUNDLE), threads=1, vae_dtype="bf16")
        plan = half.plan(prompt="x", frames=9)
    except wanrt.ResourcesError as e:  # LibTorch 1.13: no bf16 nearest-exact upsampling
        assert "nearest-exact" in str(e)
        return
    vae = {c["name"]: c for c in plan["plan"]["components"]}["vae"]
    assert vae["storage"] == vae["compute"] == "bf16"
    frames, report = half.generate(**REQUEST)
    assert frames.shape[0] == 9
    assert {c["name"]: c["compute"] for c in report["plan"]["components"]}["vae"] == "bf16"
