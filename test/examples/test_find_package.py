"""docs/examples/generate_video built the way an outside application builds it: wanrt is
installed into a temporary prefix, the example is configured with find_package(wanrt) against
that prefix only, built, and run on a tiny bundle."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUILD_DIR = os.environ.get("WANRT_BUILD_DIR")
SOURCE_DIR = os.environ.get("WANRT_SOURCE_DIR")
TINY = os.environ.get("WANRT_TINY_BUNDLES")
pytestmark = pytest.mark.skipif(not (BUILD_DIR and SOURCE_DIR and TINY),
                                reason="run through ctest (WANRT_BUILD_DIR etc. not set)")


def check(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_example_builds_against_the_installed_package(tmp_path):
    prefix = tmp_path / "prefix"
    check(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
    assert (prefix / "lib" / "cmake" / "wanrt" / "wanrtConfig.cmake").is_file()
    assert (prefix / "include" / "models" / "wan22" / "pipeline.h").is_file()
    assert (prefix / "bin" / "wanrun").is_file()
    assert (prefix / "share" / "wanrt" / "demo-bundle" / "wanrt.yaml").is_file()
    module = prefix / "lib" / "wanrt" / "libwanrt_spm.so"
    assert module.is_file()

    example = Path(SOURCE_DIR) / "docs" / "examples" / "generate_video"
    build = tmp_path / "build"
    check(["cmake", "-S", example, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
           f"-DCMAKE_PREFIX_PATH={prefix}"])
    check(["cmake", "--build", build])

    out = tmp_path / "fox.mp4"
    env = dict(os.environ, WANRT_SPM_MODULE=str(module))  # the installed tokenizer module
    r = check([build / "generate_video", Path(TINY) / "tiny-t2v-moe", out, "a fox"], env=env)
    assert r.stdout.strip() == "5 frames 64x64"
    assert out.stat().st_size > 0
    if shutil.which("ffprobe"):
        probe = check(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                       "stream=nb_read_frames,width,height", "-of", "json", out])
        stream = json.loads(probe.stdout)["streams"][0]
        assert (int(stream["nb_read_frames"]), stream["width"], stream["height"]) == (5, 64, 64)
