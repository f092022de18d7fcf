#!/usr/bin/env python3
"""Checks the layering rule of docs/architecture.md on a source tree.

Every C/C++ source under a layer folder may include headers only from the layers it is allowed
to see (written from the repository root, e.g. "runtime/error.h"). Exit status 1 lists the
violations; 0 means the tree obeys the rule.
"""
import re
import sys
from pathlib import Path

# layer -> layers it may include (itself included). Siblings optim, chunking, io and dist never
# see each other; nothing below bindings may see bindings.
ALLOWED = {
    "runtime": {"runtime"},
    "optim": {"optim", "runtime"},
    "chunking": {"chunking", "runtime"},
    "io": {"io", "runtime"},
    "dist": {"dist", "runtime"},
    "models": {"models", "optim", "chunking", "io", "dist", "runtime"},
    "bindings": {"bindings", "models", "optim", "chunking", "io", "dist", "runtime"},
}
SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh", ".inl"}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def violations(root: Path):
    """Yields 'file:line: message' for each include that breaks the rule."""
    for layer, allowed in ALLOWED.items():
        base = root / layer
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(root)
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                if target.startswith("../") or "/../" in target:
                    yield f"{rel}:{number}: relative include \"{target}\"; write includes from the repo root"
                    continue
                top = target.split("/", 1)[0]
                if top in ALLOWED and top not in allowed:
                    siblings = {"optim", "chunking", "io", "dist"}
                    kind = "sibling" if layer in siblings and top in siblings else "higher layer"
                    yield (f"{rel}:{number}: {layer}/ includes \"{target}\" from {kind} {top}/; "
                           f"{layer}/ may include only {', '.join(sorted(allowed))}")


def main(argv):
    root = Path(argv[1] if len(argv) > 1 else ".").resolve()
    found = list(violations(root))
    for v in found:
        print(v)
    if found:
        print(f"layering: {len(found)} violation(s)")
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
