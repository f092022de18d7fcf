"""wanrun's command-line surface: version, help, generate, inspect, and every bad input's
message and exit code (exit codes: README.md)."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

WANRUN = os.environ.get("WANRUN")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

PROMPT = "a red fox running through fresh snow"


def run(*args, timeout=120):
    return subprocess.run([WANRUN, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def tiny(name):
    if not TINY or not (Path(TINY) / name / "wanrt.yaml").is_file():
        pytest.skip("WANRT_TINY_BUNDLES not set (run through ctest)")
    return Path(TINY) / name


def demo_bundle():
    return Path(WANRUN).resolve().parent.parent / "share" / "wanrt" / "demo-bundle"


def write_png(path, height=48, width=40):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import numpy as np
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin(x / 3.0)], axis=2)
    mpimg.imsave(path, img)
    return path


def ffprobe(path):
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed")
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=codec_name,width,height,r_frame_rate,"
                          "nb_read_frames,pix_fmt", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["streams"][0]


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("wanrt 0.1.0 (LibTorch ")
    assert "CUDA backend:" in r.stdout


def test_help_lists_every_subcommand():
    r = run("--help")
    assert r.returncode == 0
    for name in ["generate", "plan", "doctor", "inspect", "bench"]:
        assert name in r.stdout


def test_generate_help_lists_its_options():
    r = run("generate", "--help")
    assert r.returncode == 0
    for opt in ["--model", "--prompt", "--negative-prompt", "--image", "--size", "--frames",
                "--steps", "--seed", "--guidance", "--shift", "--sampler", "--out", "--threads",
                "--json", "--no-verify", "--progress", "--chunk-frames", "--chunk-overlap",
                "--blend", "--vae-tile", "--no-stream", "--auto-optimize", "--dtype", "--offload",
                "--blocks-resident", "--prefetch", "--vram-budget", "--optim-config", "--device",
                "--no-fallback"]:
        assert opt in r.stdout


def test_unknown_option_is_a_usage_error():
    r = run("--no-such-flag")
    assert r.returncode == 2
    assert "no-such-flag" in (r.stdout + r.stderr)


def test_bench_is_built_and_lists_its_options():
    """`wanrun bench` used to answer "not built yet"; its behaviour is tested in
    test_wanrun_bench.py."""
    r = run("bench", "--help")
    assert r.returncode == 0
    assert "not built yet" not in r.stdout + r.stderr
    for opt in ["--model", "--plans", "--dtypes", "--chunks", "--blocks-resident", "--repeat",
                "--warmup", "--out", "--json", "--list", "--progress", "--device"]:
        assert opt in r.stdout


def test_generate_with_the_demo_bundle_writes_an_mp4(tmp_path):
    """What `make demo` does: no --model, the demo bundle beside the binary (tiny-ti2v)."""
    manifest = yaml.safe_load((demo_bundle() / "wanrt.yaml").read_text())
    out = tmp_path / "demo.mp4"
    r = run("generate", "--prompt", PROMPT, "--out", out)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # piped: no progress bar
    s = ffprobe(out)
    assert s["codec_name"] == "h264" and s["pix_fmt"] == "yuv420p"
    assert (s["width"], s["height"]) == tuple(manifest["sampling"]["size"])
    assert int(s["nb_read_frames"]) == manifest["sampling"]["frames"]
    assert s["r_frame_rate"] == f"{manifest['sampling']['fps']}/1"
    report = json.loads((tmp_path / "demo.mp4.json").read_text())
    assert report["request"]["prompt"] == PROMPT
    assert report["request"]["seed"] == 0
    assert report["request"]["steps"] == manifest["sampling"]["steps"]
    assert set(report["times_s"]) >= {"text_encoder", "denoise", "vae_decode", "load", "total"}
    assert report["peak_rss_bytes"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.mp4", "demo.mp4.json"]


def test_same_seed_same_frames_other_seed_other_frames(tmp_path):
    outs = []
    for name, seed in [("a.pt", 5), ("b.pt", 5), ("c.pt", 6)]:
        r = run("generate", "--prompt", PROMPT, "--seed", seed, "--out", tmp_path / name)
        assert r.returncode == 0, r.stderr
        outs.append(torch.load(tmp_path / name))
    assert outs[0].dtype == torch.uint8 and outs[0].shape == (5, 64, 64, 3)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_png_directory_output(tmp_path):
    out = tmp_path / "frames"
    r = run("generate", "--prompt", PROMPT, "--frames", 9, "--out", f"{out}/")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:05d}.png" for i in range(9)]


def test_json_report_on_stdout(tmp_path):
    r = run("generate", "--prompt", PROMPT, "--steps", 2, "--json", "--out", tmp_path / "x.pt")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["request"]["steps"] == 2
    assert "steps" in doc["request"]["user_set"]
    assert doc["expert_trace"] == ["dit", "dit"]


def test_i2v_and_ti2v_with_an_image(tmp_path):
    image = write_png(tmp_path / "first.png")
    for bundle in ["tiny-i2v-moe", "tiny-ti2v"]:
        out = tmp_path / f"{bundle}.pt"
        r = run("generate", "--model", tiny(bundle), "--prompt", PROMPT, "--image", image,
                "--out", out)
        assert r.returncode == 0, r.stderr
        assert torch.load(out).shape == (5, 64, 64, 3)


BAD_INPUTS = [
    # args, exit code, texts the message must contain
    (["--frames", "80"], 2, ["--frames 80 is not of the form 4n+1", "use 77 or 81"]),
    (["--size", "100x100"], 2, ["multiples of 32", "nearest valid size: 96x96"]),
    (["--size", "wide"], 2, ["--size 'wide' is not WIDTHxHEIGHT"]),
    (["--steps", "0"], 2, ["--steps must be at least 1"]),
    (["--sampler", "ddim"], 2, ["ddim"]),
    (["--out", "video.avi"], 2, ["video.avi"]),
    (["--model", "/nonexistent/bundle"], 3, ["/nonexistent/bundle"]),
    (["--image", "/nonexistent/image.png"], 2, ["/nonexistent/image.png"]),
    (["--frames", "17", "--chunk-frames", "6"], 2,
     ["--chunk-frames 6", "not of the form 4n+1", "use 5 or 9 frames per chunk"]),
    (["--frames", "17", "--chunk-frames", "9", "--chunk-overlap", "6"], 2,
     ["--chunk-overlap 6", "use 4 or 8 overlap frames"]),
    (["--vae-tile", "40"], 2, ["--vae-tile 40", "use --vae-tile 32 or 48"]),
    (["--blend", "gaussian"], 2, ["gaussian"]),
]


@pytest.mark.parametrize("args,code,texts", BAD_INPUTS, ids=lambda v: str(v))
def test_bad_input_message_and_exit_code(tmp_path, args, code, texts):
    out = [] if "--out" in args else ["--out", tmp_path / "out.mp4"]
    r = run("generate", "--prompt", PROMPT, *out, *args)
    assert r.returncode == code, r.stderr
    for text in texts:
        assert text in r.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_chunked_generation_streams_the_right_frames(tmp_path):
    """Sliding windows (5 frames = 2 latent, overlap 4 = 1: windows [0,2) [1,3) of 3 latent
    frames) and 32-pixel VAE tiles (2 latent px overlapping by 1 over 4: 3x3 tiles)."""
    out = tmp_path / "chunked.pt"
    r = run("generate", "--prompt", PROMPT, "--frames", 9, "--steps", 2, "--chunk-frames", 5,
            "--chunk-overlap", 4, "--vae-tile", 32, "--blend", "cosine", "--json", "--out", out)
    assert r.returncode == 0, r.stderr
    frames = torch.load(out)
    assert frames.dtype == torch.uint8 and frames.shape == (9, 64, 64, 3)
    chunking = json.loads(r.stdout)["plan"]["chunking"]
    assert chunking["chunk_frames"] == 5 and chunking["chunk_overlap"] == 4
    assert chunking["vae_tile"] == 32 and chunking["blend"] == "cosine"
    assert chunking["denoise_windows"] == 2 and chunking["vae_tiles"] == 9
    assert chunking["dit_calls"] == 2 * 2 * 2  # steps x (cond, uncond) x windows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunked.pt", "chunked.pt.json"]
    # The same request without chunking gives other pixels, same shape.
    plain = tmp_path / "plain.pt"
    r = run("generate", "--prompt", PROMPT, "--frames", 9, "--steps", 2, "--out", plain)
    assert r.returncode == 0, r.stderr
    other = torch.load(plain)
    assert other.shape == frames.shape and not torch.equal(other, frames)


def test_streamed_output_equals_the_in_memory_output(tmp_path):
    """The default streams frames to the writer while decoding; --no-stream decodes the whole
    video first (tensor and PNG outputs compared byte for byte)."""
    for name in ["v.pt", "frames/"]:
        outs = []
        for mode, extra in [("stream", []), ("whole", ["--no-stream"])]:
            out = tmp_path / mode / name
            out.parent.mkdir(exist_ok=True)
            r = run("generate", "--prompt", PROMPT, "--frames", 9, "--steps", 2, *extra,
                    "--out", f"{out}/" if name.endswith("/") else out)
            assert r.returncode == 0, r.stderr
            outs.append(out)
        if name == "v.pt":
            a, b = torch.load(outs[0]), torch.load(outs[1])
            assert a.shape == (9, 64, 64, 3) and torch.equal(a, b)
        else:
            files = sorted(p.name for p in outs[0].iterdir())
            assert files == [f"frame_{i:05d}.png" for i in range(9)]
            assert files == sorted(p.name for p in outs[1].iterdir())
            for f in files:
                assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes()


def test_image_must_match_the_task(tmp_path):
    r = run("generate", "--model", tiny("tiny-i2v-moe"), "--prompt", PROMPT,
            "--out", tmp_path / "o.pt")
    assert r.returncode == 2
    assert "--image" in r.stderr
    r = run("generate", "--model", tiny("tiny-t2v-moe"), "--prompt", PROMPT,
            "--image", write_png(tmp_path / "i.png"), "--out", tmp_path / "o.pt")
    assert r.returncode == 2
    assert "takes no image" in r.stderr


def test_corrupted_bundle_is_caught_by_the_hash(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(demo_bundle(), bundle)
    data = bytearray((bundle / "dit.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "dit.pt").write_bytes(bytes(data))
    r = run("generate", "--model", bundle, "--prompt", PROMPT, "--out", tmp_path / "o.mp4")
    assert r.returncode == 3
    assert "sha256" in r.stderr and "dit.pt" in r.stderr
    assert "--no-verify" in r.stderr


def signal_during_denoise(out, signo, *options):
    """Starts a long generate, sends `signo` once denoising runs; (exit code, stdout, stderr)."""
    proc = subprocess.Popen([WANRUN, "generate", "--prompt", PROMPT, "--steps", "5000",
                             "--progress", "plain", *options, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # wait until the denoising loop is running
            if line.startswith("denoise "):
                break
        proc.send_signal(signo)
        stdout, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, stdout, err


def test_ctrl_c_stops_and_leaves_no_file(tmp_path):
    code, _, err = signal_during_denoise(tmp_path / "long.mp4", signal.SIGINT)
    assert code == 130
    assert "cancelled" in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_with_143_and_says_where_it_stopped(tmp_path):
    code, stdout, err = signal_during_denoise(tmp_path / "long.mp4", signal.SIGTERM, "--json")
    assert code == 143, err
    doc = json.loads(stdout)
    assert doc["status"] == "cancelled" and doc["signal"] == "SIGTERM" and doc["output"] is None
    assert doc["stopped_at"]["stage"] == "denoise"
    assert 1 <= doc["stopped_at"]["step"] < doc["stopped_at"]["total"]
    assert "stopped during denoise" in err
    assert list(tmp_path.iterdir()) == []  # no video, no temporary, no report beside it


def test_a_file_size_limit_is_a_clear_error_with_nothing_written(tmp_path):
    import resource

    def limit():  # like a full disk: writes past 4 KiB fail (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 10, 4 << 10))

    for name in ("frames.pt", "video.mp4"):
        out = tmp_path / name
        r = subprocess.run([WANRUN, "generate", "--prompt", PROMPT, "--steps", "1", "--frames",
                            "17", "--progress", "none", "--out", str(out)],
                           capture_output=True, text=True, timeout=120, preexec_fn=limit)
        assert r.returncode == 4, (name, r.returncode, r.stderr)  # resources (README: exit codes)
        assert "error [resources]" in r.stderr, r.stderr
        assert list(tmp_path.iterdir()) == [], name


def test_inspect_reports_the_manifest(tmp_path):
    bundle = tiny("tiny-t2v-moe")
    manifest = yaml.safe_load((bundle / "wanrt.yaml").read_text())
    r = run("inspect", bundle)
    assert r.returncode == 0, r.stderr
    for name in manifest["components"]:
        assert name in r.stdout
    r = run("inspect", bundle, "--json", "--verify")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verified"] is True
    got = {c["name"]: (c["parameters"], c["bytes"], c["dtype"]) for c in doc["components"]}
    want = {n: (c["parameters"], c["bytes"], c["dtype"]) for n, c in manifest["components"].items()}
    assert got == want
    r = run("inspect", tmp_path)
    assert r.returncode == 3
    assert "wanrt.yaml" in r.stderr
