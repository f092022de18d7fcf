"""The examples built the way an outside application builds them: wanrt is installed into a
temporary prefix; docs/examples/generate_video is configured with find_package(wanrt) against
that prefix only, docs/examples/c_embed is compiled as C99 with the flags pkg-config gives for
the installed wanrt.pc; both run on a tiny bundle, and the C example's frames equal wanrun's."""
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


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("install") / "prefix"
    check(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
    return prefix


def test_example_builds_against_the_installed_package(tmp_path, prefix):
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


def test_c_example_via_pkg_config_streams_the_frames_wanrun_writes(tmp_path, prefix):
    assert (prefix / "include" / "wanrt" / "wanrt.h").is_file()
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = check(["pkg-config", "--cflags", "--libs", "wanrt"], env=env).stdout.split()
    exe = tmp_path / "c_embed"
    check(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
           Path(SOURCE_DIR) / "docs" / "examples" / "c_embed" / "main.c", *flags, "-o", exe])

    bundle = Path(TINY) / "tiny-ti2v"
    raw = tmp_path / "frames.rgb"
    run_env = dict(os.environ, WANRT_SPM_MODULE=str(prefix / "lib" / "wanrt" / "libwanrt_spm.so"))
    r = check([exe, bundle, raw, "a heron over a lake", "9", "3", "5"], env=run_env)
    count, _, size = r.stdout.split()
    width, height = (int(v) for v in size.split("x"))
    assert int(count) == 9

    # The same request through wanrun, as a uint8 tensor file.
    pt = tmp_path / "frames.pt"
    check([prefix / "bin" / "wanrun", "generate", "--model", bundle, "--prompt",
           "a heron over a lake", "--frames", "9", "--steps", "3", "--seed", "5", "--out", pt,
           "--progress", "none"], env=run_env)
    import torch
    frames = torch.load(str(pt))
    assert tuple(frames.shape) == (9, height, width, 3)
    assert raw.read_bytes() == frames.contiguous().numpy().tobytes()


def test_the_installed_python_package_imports(prefix):
    site = prefix / "lib" / "python3" / "dist-packages"
    assert list((site / "wanrt").glob("_wanrt*.so"))
    env = dict(os.environ, PYTHONPATH=str(site),
               WANRT_SPM_MODULE=str(prefix / "lib" / "wanrt" / "libwanrt_spm.so"))
    r = check(["/usr/bin/python3", "-c",
               "import wanrt, sys; b = wanrt.Bundle(sys.argv[1], threads=1); "
               "f, _ = b.generate(prompt='x', frames=5, steps=1); print(wanrt.__file__, f.shape)",
               Path(TINY) / "tiny-ti2v"], env=env, cwd="/")
    assert str(site) in r.stdout and "(5, " in r.stdout
