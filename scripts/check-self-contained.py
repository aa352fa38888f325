#!/usr/bin/env python3
"""Fails if a file under version control reads from outside the repository.

A user's clone has nothing beside it, so every path a test, script or build reads must stay
inside the repository. Two checks over `git ls-files`:
- relative path literals ("../..."), resolved from where they are used (a Rust file's crate,
  since cargo runs tests there and `env!("CARGO_MANIFEST_DIR")` anchors them; any other file's
  folder), must not leave the repository;
- no file names the sibling folder the team's notes live in (`../shared`, or `"shared"` joined
  to the repository's parent).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = {".rs", ".py", ".sh", ".mjs", ".js", ".toml", ".yaml", ".yml", ".tpl", ".json"}
RELATIVE = re.compile(r"""["'](\.\./[^"'\s]*)["']""")
SIBLING = re.compile(r"""\.\./shared\b|parent\s*/\s*["']shared["']|MODELGATE_SHARED""")
# Strings that are attack inputs, not paths the code reads (the e2e attack corpus sends them).
ATTACK_INPUTS = Path("tests/tests/attacks")


def crate_root(path: Path) -> Path:
    for folder in path.parents:
        if (folder / "Cargo.toml").is_file():
            return folder
    return REPO


def main() -> int:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.split("\0")
    problems = []
    for name in filter(None, files):
        rel = Path(name)
        path = REPO / rel
        if rel == Path("scripts/check-self-contained.py") or path.suffix not in CODE:
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if SIBLING.search(line):
                problems.append(f"{rel}:{number}: names a folder beside the repository: {line.strip()}")
            if rel.is_relative_to(ATTACK_INPUTS):
                continue
            for literal in RELATIVE.findall(line):
                if "include_str!" in line or "include_bytes!" in line:
                    base = path.parent
                elif path.suffix == ".rs":
                    base = crate_root(path)
                else:
                    base = path.parent
                target = (base / literal).resolve()
                if not target.is_relative_to(REPO):
                    problems.append(f"{rel}:{number}: {literal!r} leaves the repository ({target})")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check-self-contained: {len(problems)} reference(s) outside the repository", file=sys.stderr)
        return 1
    print(f"check-self-contained: {len(files) - 1} tracked files read nothing outside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main())
