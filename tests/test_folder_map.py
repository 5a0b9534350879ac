"""The README's folder map is true: every path it names exists, and every room of the house
(each package under tasks/, each module of the engine and the command line) is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def folder_map() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Folder map")
    return readme[start : readme.index("\n## ", start + 1)]


def test_every_path_in_the_folder_map_exists() -> None:
    rows = [line for line in folder_map().splitlines() if line.startswith("| `")]
    named = [p for row in rows for p in re.findall(r"`([^`\s]+)`", row.split("|")[1])]
    missing = [p for p in named if "/" in p and not (ROOT / p.rstrip("/")).exists()]
    assert named and missing == []


def test_every_package_and_engine_module_is_in_the_folder_map() -> None:
    text = folder_map()
    packages = sorted(
        p.parent.relative_to(ROOT).as_posix() + "/"
        for p in (ROOT / "tasks").rglob("__init__.py")
        if p.parent.name not in {"tasks", "lib"}  # only folders of folders
    )
    modules = sorted(
        p.name
        for folder in ("engine", "cli", "audit")
        for p in (ROOT / "tasks" / folder).glob("*.py")
        if p.name != "__init__.py"
    )
    unnamed = [p for p in packages if f"`{p}`" not in text]
    unnamed += [m for m in modules if f"`{m}`" not in text]
    assert unnamed == []
