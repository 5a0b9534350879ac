"""`--set section.key=value` and `--cycles N`, written into the params file like `dvc exp run
--set-param`, so that `dvc status` and `dvc repro` see the params the flow ran with.

The change is planned and validated whole before anything is written (`plan_update`), so a
command that fails leaves the file exactly as it was; comments and layout are kept (ruamel).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.engine import pipeline
from tasks.engine.config import Config, parse
from tasks.engine.params_file import MAX_CYCLES, ConfigError, parse_yaml, read_params

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value parsed as a YAML scalar)."""
    key, sep, value = text.partition("=")
    if not sep or not _KEY.match(key.strip()):
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    if not value.strip():
        return key.strip().split("."), None
    try:
        return key.strip().split("."), yaml.safe_load(value)
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML") from None


def cycles_map(count: int) -> dict[str, dict[str, str]]:
    """The `cycles` section for `count` cycles: c1..cN, each naming its predecessor."""
    if not 0 <= count <= MAX_CYCLES:
        raise ConfigError(
            f"--cycles {count}: must be 0 to {MAX_CYCLES} (each listed cycle slows every DVC "
            "check and `flywheel status`; see MAX_CYCLES in tasks/engine/config.py)"
        )
    return {f"c{k}": {"prev": f"c{k - 1}"} for k in range(1, count + 1)}


@dataclass(frozen=True)
class ParamsUpdate:
    """A params file's next content, validated but not yet written, so that a command checks
    everything else first and, when it fails, leaves the file exactly as it was."""

    path: Path
    config: Config
    """The config that the file holds once written."""
    changes: tuple[str, ...]
    text: str | None
    """The new content; None when nothing changes."""
    before: bytes = b""

    def write(self) -> pipeline.Synced | None:
        """Replace the file whole (refused if it changed since it was read); then, in a
        workspace (a dvc.yaml beside it), bring each cycle's `dvc.yaml` in line with its
        cycles (`pipeline.sync`), changed or not, and return what that changed. A missing
        template is refused before the params file is touched."""
        root = self.path.resolve().parent
        text = pipeline.template(root) if (root / "dvc.yaml").is_file() else None
        if self.text is not None:
            self._replace(self.text)
        return None if text is None else pipeline.sync(root, self.config.predecessors, text)

    def _replace(self, text: str) -> None:
        if self.path.read_bytes() != self.before:
            raise ConfigError(f"{self.path}: changed while this command ran; nothing written")
        from tasks.engine.files import UserPathError, write_user_file

        try:  # the user's file: through a link to its target, its permissions kept
            write_user_file(self.path, text)
        except UserPathError as error:
            raise ConfigError(str(error)) from None


def plan_update(path: Path, overrides: list[str], cycles: int | None) -> ParamsUpdate:
    """The params file with `--set` overrides and `--cycles` applied, keeping its comments,
    validated whole; nothing is written (see `ParamsUpdate.write`).

    A section shared through a YAML alias or merge key is copied where a `--set` goes through
    it, so the change lands only where the key names; any other key that changes anyway is
    listed among the changes.
    """
    path = Path(path)
    raw = read_params(path)  # bad YAML and repeated keys are refused before anything else
    root = path.resolve().parent
    if not overrides and cycles is None:
        return ParamsUpdate(path, parse(raw, root, source=str(path)), (), None)
    before = path.read_bytes()
    rt = _round_trip()
    doc = rt.load(before.decode("utf-8")) or {}
    changes, named = [], []
    for text in overrides:
        keys, value = parse_override(text)
        _set(doc, keys, value, text)
        changes.append(f"{'.'.join(keys)}={value!r}")
        named.append(".".join(keys))
    if cycles is not None:
        doc["cycles"] = {c: _flow(item) for c, item in cycles_map(cycles).items()}
        changes.append(f"cycles=c1..c{cycles}" if cycles else "cycles=[]")
        named.append("cycles")
    text = _dump(rt, doc)
    after = parse_yaml(text, str(path))
    changes += [
        f"also changed: {key} (it shares a YAML anchor with what was set)"
        for key in _changed(raw, after)
        if not _under(key, named)
    ]
    return ParamsUpdate(path, parse(after, root, source=str(path)), tuple(changes), text, before)


def plan_append(path: Path) -> tuple[str, ParamsUpdate]:
    """The params file with one more cycle after the last listed one (`c<k+1>`, its `prev` the
    last), comments kept; validated, not written. Raises ConfigError at MAX_CYCLES."""

    path = Path(path)
    raw = read_params(path)
    listed = list(raw.get("cycles") or {})
    if len(listed) >= MAX_CYCLES:
        raise ConfigError(f"{path}: already {len(listed)} cycles, the most a workspace holds")
    numbers = [int(c[1:]) for c in listed if re.fullmatch(r"c[0-9]+", c)]
    cycle, prev = f"c{max(numbers, default=0) + 1}", listed[-1] if listed else "c0"
    before = path.read_bytes()
    rt = _round_trip()
    doc = rt.load(before.decode("utf-8")) or {}
    if not doc.get("cycles"):
        doc["cycles"] = {}
    doc["cycles"][cycle] = _flow({"prev": prev})
    text = _dump(rt, doc)
    config = parse(parse_yaml(text, str(path)), path.resolve().parent, source=str(path))
    return cycle, ParamsUpdate(path, config, (f"cycles+={cycle}",), text, before)


def update_params_file(path: Path, overrides: list[str], cycles: int | None) -> list[str]:
    """Apply overrides to the params file in place, keeping its comments; validate first.

    The file is rewritten (like `dvc exp run --set-param`) so that `dvc status` and `dvc repro`
    see the same params the flow ran with. Returns a description of each change.
    """
    update = plan_update(path, overrides, cycles)
    update.write()
    return list(update.changes)


def _set(doc: Any, keys: list[str], value: Any, text: str) -> None:
    node = doc
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise ConfigError(f"--set {text!r}: {where} is a value, not a section")
        elif len(uses := _uses(doc, child)) > 1:  # a YAML alias: change this use only
            if uses[0][0] is node and uses[0][1] == key:  # its text stands here: copy the rest
                for parent, name in uses[1:]:
                    parent[name] = _copy(child)
            else:
                child = node[key] = _copy(child)
        node = child
    node[keys[-1]] = value


def _uses(doc: Any, target: Any) -> list[tuple[Any, Any]]:
    """(parent, key) of each place `target` appears, in the order they are written."""
    found, seen = [], set()
    todo = [doc]
    while todo:
        node = todo.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in reversed(list(items)):  # a stack: reversed, to pop them in order
            if child is target:
                found.append((node, key))
            elif isinstance(child, dict | list) and id(child) not in seen:
                seen.add(id(child))
                todo.append(child)
    return found


def _copy(section: Any) -> Any:
    """A deep copy (comments and layout kept) that shares no node and defines no anchor."""
    import copy

    fresh = copy.deepcopy(section)
    todo = [fresh]
    while todo:
        node = todo.pop()
        if hasattr(node, "yaml_anchor") and node.yaml_anchor() is not None:
            node.yaml_set_anchor(None)
        children = node.values() if isinstance(node, dict) else node
        todo.extend(child for child in children if isinstance(child, dict | list))
    return fresh


def _changed(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain mappings."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return [] if before == after else [prefix]
    keys = [*before, *(key for key in after if key not in before)]
    return [
        changed
        for key in keys
        for changed in _changed(
            before.get(key, _ABSENT),
            after.get(key, _ABSENT),
            f"{prefix}.{key}" if prefix else str(key),
        )
    ]


_ABSENT = object()


def _under(key: str, named: list[str]) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in named)


def _round_trip() -> Any:
    """ruamel's round-trip YAML, keeping quotes, and writing None as `null` as the file does
    (ruamel's default leaves the value blank: a run's diff of params.yaml was mostly that)."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.preserve_quotes = True
    rt.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return rt


def _flow(item: dict[str, str]) -> Any:
    """A cycle's entry in flow style, `c3: {prev: c2}`, as params.yaml writes them."""
    from ruamel.yaml.comments import CommentedMap

    entry = CommentedMap(item)
    entry.fa.set_flow_style()
    return entry


def _dump(rt: Any, doc: Any) -> str:
    buffer = io.StringIO()
    rt.dump(doc, buffer)
    return buffer.getvalue()
