"""The layering checker must pass a clean tree and fail every kind of forbidden include."""
import subprocess
import sys
from pathlib import Path

import pytest

CHECKER = Path(__file__).with_name("check_layering.py")
REPO = Path(__file__).resolve().parents[2]


def write_tree(root: Path, files: dict):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def run(root: Path):
    return subprocess.run([sys.executable, str(CHECKER), str(root)], capture_output=True, text=True)


CLEAN = {
    "runtime/error.h": '#pragma once\n#include <string>\n',
    "optim/plan.cpp": '#include "optim/plan.h"\n#include "runtime/error.h"\n',
    "chunking/blend.cpp": '#include "runtime/error.h"\n',
    "io/video_writer.cpp": '#include "runtime/error.h"\n',
    "dist/process_group.cpp": '#include "runtime/error.h"\n',
    "models/wan22/pipeline.cpp": '#include "optim/plan.h"\n#include "chunking/blend.h"\n',
    "bindings/cli/main.cpp": '#include "models/wan22/pipeline.h"\n',
}


def test_clean_tree_passes(tmp_path):
    write_tree(tmp_path, CLEAN)
    r = run(tmp_path)
    assert r.returncode == 0, r.stdout
    assert "layering: ok" in r.stdout


@pytest.mark.parametrize("rel,text,needle", [
    ("runtime/component.h", '#include "optim/plan.h"\n', "runtime/ includes \"optim/plan.h\" from higher layer optim/"),
    ("optim/plan.cpp", '#include "chunking/blend.h"\n', "from sibling chunking/"),
    ("chunking/blend.cpp", '  #  include "optim/plan.h"\n', "from sibling optim/"),
    ("models/wan22/x.h", '#include "bindings/cli/opts.h"\n', "from higher layer bindings/"),
    ("runtime/cuda/cuda_backend.cpp", '#include "models/wan22/pipeline.h"\n', "from higher layer models/"),
    ("runtime/bundle.cpp", '#include "io/video_writer.h"\n', "from higher layer io/"),
    ("io/image_reader.cpp", '#include "optim/plan.h"\n', "from sibling optim/"),
    ("chunking/blend.cpp", '#include "io/video_writer.h"\n', "from sibling io/"),
    ("optim/offload.cpp", '#include "../runtime/error.h"\n', "relative include"),
    ("dist/process_group.cpp", '#include "models/wan22/pipeline.h"\n', "from higher layer models/"),
    ("dist/process_group.cpp", '#include "optim/plan.h"\n', "from sibling optim/"),
    ("optim/plan.cpp", '#include "dist/process_group.h"\n', "from sibling dist/"),
])
def test_forbidden_include_fails(tmp_path, rel, text, needle):
    write_tree(tmp_path, CLEAN)
    write_tree(tmp_path, {rel: text})
    r = run(tmp_path)
    assert r.returncode == 1
    assert needle in r.stdout
    assert f"{rel}:1:" in r.stdout


def test_the_repository_obeys_the_rule():
    r = run(REPO)
    assert r.returncode == 0, r.stdout
