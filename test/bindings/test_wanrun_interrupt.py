"""Interrupted runs of wanrun generate at every stage: SIGINT / SIGTERM while the prompts are
encoded, while denoising, while the VAE decodes (frames streaming into the output) and while
the collected video is written. Each ends with 130 / 143, the run report saying where it
stopped, and no output or temporary left; a second signal exits at once, also leaving nothing.

The signal is raised by wanrun itself at an exact progress event (the test hook
WANRT_TEST_SIGNAL_AT, docs/development.md), so nothing here depends on timing."""
import json
import os
import signal
import subprocess

import pytest

WANRUN = os.environ.get("WANRUN")
pytestmark = pytest.mark.skipif(not WANRUN, reason="WANRUN (path to the built wanrun) not set")

PROMPT = "a red fox running through fresh snow"


def interrupted(tmp_path, at, *options, out="video.mp4"):
    env = dict(os.environ, WANRT_TEST_SIGNAL_AT=at)
    return subprocess.run([WANRUN, "generate", "--prompt", PROMPT, "--steps", "3", "--json",
                           "--progress", "none", *options, "--out", str(tmp_path / out)],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("at, stage, options, out", [
    ("text_encoder:1", "text_encoder", [], "video.mp4"),
    ("denoise:2", "denoise", [], "video.mp4"),
    ("vae_decode:1", "vae_decode", [], "video.mp4"),        # frames already in the temporary
    ("vae_decode:1", "vae_decode", [], "frames/"),          # a PNG directory being filled
    ("write:1", "write", ["--no-stream"], "video.mp4"),     # the collected video being written
    ("write:0", "write", ["--no-stream"], "frames.pt"),     # written whole: before it starts
])
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_at_any_stage_stops_cleanly(tmp_path, at, stage, options, out, signo):
    name = "TERM" if signo == signal.SIGTERM else "INT"
    r = interrupted(tmp_path, f"{at}:1:{name}", *options, out=out)
    assert r.returncode == 128 + signo, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "cancelled" and doc["output"] is None
    assert doc["signal"] == f"SIG{name}"
    assert doc["stopped_at"]["stage"] == stage
    assert f"stopped during {stage}" in r.stderr
    assert list(tmp_path.iterdir()) == []  # no video, no temporary, no report beside it


@pytest.mark.parametrize("out", ["video.mp4", "frames/"])
def test_a_second_signal_exits_at_once_and_leaves_no_temporary(tmp_path, out):
    # Two signals at the first denoising step: the second one ends the process from the signal
    # handler, without the orderly cancellation (so no report), but the output's temporary,
    # created before denoising, is removed all the same.
    r = interrupted(tmp_path, "denoise:1:2", out=out)
    assert r.returncode == 130, r.stderr
    assert r.stdout == ""
    assert "stopped during" not in r.stderr
    assert list(tmp_path.iterdir()) == []
