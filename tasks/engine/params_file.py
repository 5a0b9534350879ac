"""Reading `params.yaml`: the one way every command reads it, stricter than plain YAML.

`read_params` refuses what `yaml.safe_load` accepts silently (a key given twice, at any depth)
and names the line of every problem. Light on purpose (yaml only): `flywheel status` reads the
cycle list through it and must answer at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = "params.yaml"
MAX_CYCLES = 1000
"""The most cycles a params file may list. Each listed cycle costs something before it runs:
DVC resolves every stage of dvc.yaml whenever it checks one (measured: 0.2 s a check with 100
cycles listed, 1.3 s with 1,000), and `flywheel status` reads each cycle's records (100,000
cycles took it 216 s). No domain here has work for more: digits uses up its pool by cycle 7."""


class ConfigError(ValueError):
    """params are malformed; the message names the file and the key."""


def read_params(path: Path) -> dict[str, Any]:
    """The raw mapping in a params file: the one way every command reads it.

    Stricter than `yaml.safe_load`, which keeps the last of two equal keys without a word: a key
    given twice in one mapping is refused, naming its dotted path and both lines.
    """
    return parse_yaml(params_text(path), str(path))


def params_text(path: Path) -> str:
    """A params file's text; ConfigError naming the file when it cannot be read as UTF-8."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConfigError(f"{path}: params file not found") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """YAML text -> the mapping it holds; ConfigError naming the line of any problem."""
    # libyaml's loader when PyYAML has it: 10x faster on a long cycles list
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        twice = _duplicate_keys(node, loader) if node is not None else []
        if twice:
            raise ConfigError(
                f"{source}: {'; '.join(twice)} (YAML would silently keep only the last; keep one)"
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML{_yaml_problem(error, text)}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    return data


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return f": {error}"
    mark, lines = error.problem_mark, text.splitlines()
    if lines[mark.line : mark.line + 1] and lines[mark.line][mark.column : mark.column + 1] == "\t":
        problem = "a tab, and YAML indents with spaces only"
    else:
        problem = error.problem or "unexpected text"
        if error.context and error.context_mark is not None:
            problem += f" ({error.context} at line {error.context_mark.line + 1})"
    return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"


_MERGE = "tag:yaml.org,2002:merge"


def _duplicate_keys(root: yaml.Node, loader: Any) -> list[str]:
    """One "duplicate key 'a.b' at lines 3 and 9" for each key given twice in one mapping."""
    found = []
    seen: set[int] = set()  # a node used again through an alias is checked once
    todo: deque[tuple[yaml.Node, str]] = deque([(root, "")])
    while todo:
        node, where = todo.popleft()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            todo.extend((item, f"{where}[{index}]") for index, item in enumerate(node.value))
        if not isinstance(node, yaml.MappingNode):
            continue
        lines: dict[Any, list[int]] = {}
        names: dict[Any, str] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # `<<: *base`: later keys override, by design
                todo.append((value_node, where))
                continue
            key = _key(key_node, loader)
            names[key] = f"{where}.{key_node.value}" if where else str(key_node.value)
            lines.setdefault(key, []).append(key_node.start_mark.line + 1)
            todo.append((value_node, names[key]))
        found += [
            f"duplicate key '{names[key]}' at lines {_listed(at)}"
            for key, at in lines.items()
            if len(at) > 1
        ]
    return found


def _key(node: yaml.Node, loader: Any) -> Any:
    """A mapping key as YAML compares it (`yes` and `true` are one key); a complex key is
    never equal to another."""
    if not isinstance(node, yaml.ScalarNode):
        return id(node)
    try:
        return loader.construct_object(node)
    except yaml.YAMLError:
        return node.value


def _listed(numbers: list[int]) -> str:
    shown = [str(n) for n in numbers]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"


def listed_cycles(raw: Mapping[str, Any], source: str = PARAMS_FILE) -> list[str]:
    """The cycle ids a raw params mapping lists, for readers that do not parse it all."""
    cycles = raw.get("cycles") or {}
    if not isinstance(cycles, Mapping):
        raise ConfigError(f"{source}: cycles: expected a mapping such as {{c1: {{prev: c0}}}}")
    if len(cycles) > MAX_CYCLES:
        raise ConfigError(f"{source}: cycles: {len(cycles)} cycles listed; at most {MAX_CYCLES}")
    return [str(cycle) for cycle in cycles]
