"""What a step runs under tasks/ and which params keys it reads, per domain: read from the code.

A static call graph from the step's `run`, at the level of functions, classes, class attributes
and module constants (`from __future__ import annotations` makes annotations strings, so they
are not followed). Conservative where the code is dynamic:

- an attribute read on an object of unknown type (`layout.trainset(...)`, `domain.generate(...)`)
  reaches the member of that name of every class reached so far;
- a reached class reaches all its members, except a domain's class (what its `DOMAIN` is) and
  params sections, whose members count only when asked for by name: `prepare` does not run the
  network code that `train` does, and parsing a section reads no key of it;
- `tasks.domains.load` / `config_class` reach the chosen domain's `DOMAIN` / `Config`.

Files are what DVC sees: a file is a dependency of a stage when anything in it is reached.
Params: the attribute chains the reached code reads from the engine's config (`cfg.params.x`,
`cfg.seed`, ...) and from the domain's section (`cfg.train.steps` in a domain module), as deep as
they name fields; a section written whole into a model file (`model_dump`) is read whole.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

Node = tuple[str, str]
"""(module, qualname): `train` or `Layout.trainset`; "" is the module object itself."""
Target = tuple[str, str | None]
"""What an imported name is: (module, symbol), symbol None when it is the module."""

LOADERS = {("tasks.domains", "load"): "DOMAIN", ("tasks.domains", "config_class"): "Config"}
"""tasks/domains/__init__.py imports the chosen domain by name: its DOMAIN and its Config."""
ENGINE = ("tasks.engine", "tasks.steps")
"""Where `cfg` is the engine's Config (elsewhere, under tasks/domains and tasks/lib, a domain's)."""
DUNDERS = ("__init__", "__post_init__", "__call__")


@dataclass
class Refs:
    """What one body refers to."""

    names: set[str] = field(default_factory=set)
    attrs: set[str] = field(default_factory=set)
    """Attributes read on values that are not plain names (`load(name).prepare`)."""
    chains: set[tuple[str, ...]] = field(default_factory=set)
    """Attribute chains on a name, whole: `cfg.train.steps` is ("cfg", "train", "steps")."""
    imports: dict[str, Target] = field(default_factory=dict)
    """Imports inside the body (lazy ones)."""


@dataclass
class Module:
    imports: dict[str, Target]
    defs: dict[str, Refs]
    """Top-level functions, classes (their bases and decorators), constants, and class members
    as `Class.member`."""
    members: dict[str, list[str]]
    """class -> its methods and class attributes."""
    bases: dict[str, list[str]]


@cache
def modules() -> dict[str, Path]:
    """Module name -> file, for everything under tasks/."""
    found = {}
    for path in sorted((REPO / "tasks").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(node: ast.stmt) -> dict[str, Target]:
    if isinstance(node, ast.ImportFrom) and node.module:
        out: dict[str, Target] = {}
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            target: Target = (full, None) if full in modules() else (node.module, alias.name)
            out[alias.asname or alias.name] = target
        return out
    if isinstance(node, ast.Import):
        return {(a.asname or a.name.split(".")[0]): (a.name, None) for a in node.names}
    return {}


def _chain(node: ast.Attribute) -> tuple[str, ...] | None:
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    return (current.id, *reversed(parts)) if isinstance(current, ast.Name) else None


class _Collector(ast.NodeVisitor):
    def __init__(self, refs: Refs) -> None:
        self.refs = refs

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.refs.names.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = _chain(node)
        if chain is None:
            self.refs.attrs.add(node.attr)
            self.generic_visit(node)
        else:
            self.refs.chains.add(chain)
            self.refs.names.add(chain[0])

    def visit_Import(self, node: ast.Import) -> None:
        self.refs.imports.update(_imports(node))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.refs.imports.update(_imports(node))

    def visit_arg(self, node: ast.arg) -> None:
        pass  # an annotation

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        defaults = [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]
        for item in [*defaults, *node.body]:
            if item is not None:
                self.visit(item)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]


def _refs(*nodes: ast.AST) -> Refs:
    refs = Refs()
    for node in nodes:
        _Collector(refs).visit(node)
    return refs


def _targets(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return [t.id for t in targets if isinstance(t, ast.Name)]


@cache
def parse(name: str) -> Module:
    tree = ast.parse(modules()[name].read_text())
    mod = Module({}, {"": Refs()}, {}, {})
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            continue
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            mod.imports.update(_imports(stmt))
        elif isinstance(stmt, ast.ClassDef):
            mod.defs[stmt.name] = _refs(*stmt.bases, *stmt.decorator_list, *stmt.keywords)
            mod.bases[stmt.name] = [ast.unparse(b).split("[")[0] for b in stmt.bases]
            mod.members[stmt.name] = []
            for inner in stmt.body:
                for member in _targets(inner):
                    mod.members[stmt.name].append(member)
                    mod.defs[f"{stmt.name}.{member}"] = _refs(inner)
        else:
            for target in _targets(stmt) or [""]:
                new, refs = _refs(stmt), mod.defs.setdefault(target, Refs())
                refs.names |= new.names
                refs.attrs |= new.attrs
                refs.chains |= new.chains
                refs.imports |= new.imports
    return mod


class _Walk:
    """One reachability computation (see the module's docstring)."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.seen: set[Node] = set()
        self.todo: list[Node] = []
        self.classes: set[Node] = set()
        self.by_name: set[Node] = set()  # classes whose members count only when named
        self.attrs: set[str] = set()

    def symbol(self, module: str, name: str) -> None:
        if module not in modules():
            return
        mod = parse(module)
        if name in mod.defs:
            self.todo.append((module, name))
        elif name in mod.imports:
            target, sym = mod.imports[name]
            self.todo.append((target, "")) if sym is None else self.symbol(target, sym)

    def domain_class(self, module: str, name: str) -> None:
        """Mark the class `name` (found through imports) and its bases as by-name only."""
        if module not in modules():
            return
        mod = parse(module)
        if name in mod.members:
            self.by_name.add((module, name))
            for base in mod.bases[name]:
                self.domain_class(module, base)
        elif name in mod.imports and (target := mod.imports[name])[1] is not None:
            self.domain_class(target[0], str(target[1]))

    def dispatch(self) -> None:
        for module, cls in sorted(self.classes):
            for member in parse(module).members[cls]:
                named = member in self.attrs or member in DUNDERS
                every = (module, cls) not in self.by_name and not member.startswith("__")
                if (named or every) and (module, f"{cls}.{member}") not in self.seen:
                    self.todo.append((module, f"{cls}.{member}"))

    def visit(self, node: Node) -> None:
        module, qual = node
        mod = parse(module)
        refs = mod.defs[qual]
        local = {**mod.imports, **refs.imports}
        cls = qual.split(".")[0]
        if qual in mod.members:
            self.classes.add(node)
            if qual.endswith("Config") or "Section" in mod.bases[qual]:
                self.by_name.add(node)
            for base in mod.bases[qual]:
                self.symbol(module, base)
        if "." in qual:
            self.todo.append((module, cls))
        for name in refs.names:
            if name in refs.imports:
                target, sym = refs.imports[name]
                self.todo.append((target, "")) if sym is None else self.symbol(target, sym)
            else:
                self.symbol(module, name)
        for chain in refs.chains:
            self.follow(module, cls, local, chain)
        self.attrs |= refs.attrs
        if node in LOADERS:
            chosen = f"tasks.domains.{self.domain}"
            if LOADERS[node] == "DOMAIN":
                self.todo.append((chosen, "DOMAIN"))
                for name in parse(chosen).defs["DOMAIN"].names:
                    self.domain_class(chosen, name)
            self.todo.append((f"{chosen}.config", "Config"))

    def follow(
        self, module: str, cls: str, local: dict[str, Target], chain: tuple[str, ...]
    ) -> None:
        base, attr = chain[0], chain[1]
        target = local.get(base)
        if target and target[1] is None:  # module.attr
            full = f"{target[0]}.{attr}"
            self.todo.append((full, "")) if full in modules() else self.symbol(target[0], attr)
            self.attrs.update(chain[2:])
        elif base in ("self", "cls") and attr in parse(module).members.get(cls, []):
            self.todo.append((module, f"{cls}.{attr}"))
            self.attrs.update(chain[2:])
        else:  # an inherited member, an instance attribute, an object of unknown type
            self.attrs.update(chain[1:])

    def run(self, roots: list[Node], stop: frozenset[Node]) -> set[Node]:
        self.todo = list(roots)
        while True:
            if not self.todo:
                self.dispatch()
                if not self.todo:
                    return self.seen
            node = self.todo.pop()
            if node in self.seen or node[0] not in modules():
                continue
            self.seen.add(node)
            if node[1] and node not in stop:
                self.visit(node)


def reach(step: str, domain: str, parsing: bool = True) -> set[Node]:
    """What the stage of `step` runs with `domain` chosen: the step's `run`, and (`parsing`) the
    parsing of params.yaml that every stage does first (defaults and validators)."""
    roots = [(f"tasks.steps.{step}", "run")]
    if parsing:
        roots.append(("tasks.engine.config", "parse"))
    return _Walk(domain).run(roots, frozenset())


def code_files(step: str, domain: str) -> set[str]:
    """The files under tasks/ the stage of `step` runs (repo-relative)."""
    return {modules()[m].relative_to(REPO).as_posix() for m, q in reach(step, domain) if q != ""}


def _key(model: Any, path: tuple[str, ...], aliases: bool = False) -> str | None:
    """The params key a chain of attributes reads, as deep as it names fields."""
    keys: list[str] = []
    for attr in path:
        fields = getattr(model, "model_fields", None)
        if not fields or attr not in fields:
            break
        keys.append(fields[attr].alias or attr if aliases else attr)
        model = fields[attr].annotation
    return ".".join(keys) or None


def params_read(step: str, domain: str) -> set[str]:
    """The params.yaml keys the stage of `step` reads with `domain` chosen: engine keys
    (`trainer`, `promote`, `domain.seed`, ...) and the domain's (`digits.train.steps`). A model
    file's config is not params: what `models.load` builds from it reads none."""
    walk = _Walk(domain)
    nodes = walk.run([(f"tasks.steps.{step}", "run")], frozenset({("tasks.engine.models", "load")}))
    keys: set[str] = set()
    for module, qual in nodes:
        if qual == "":
            continue
        owner = (module, qual.split(".")[0])
        for chain in parse(module).defs[qual].chains:
            keys |= _chain_keys(chain, module.startswith(ENGINE), owner in walk.by_name, domain)
    return keys


def _chain_keys(chain: tuple[str, ...], engine: bool, in_section: bool, domain: str) -> set[str]:
    from tasks import domains
    from tasks.engine.config import Params

    section = domains.config_class(domain)
    root, rest = chain[0], chain[1:]
    if engine and root == "cfg":
        if rest[0] == "params":
            key = _key(Params, rest[1:], aliases=True)
            return {key} if key else set()
        if rest[0] == "seed":
            return {"domain.seed"}
        if rest[0] == "domain_name":
            return {"domain.name"}
        if rest[0] == "domain" and len(rest) > 1:
            key = _key(section, rest[1:])
            return {f"{domain}.{key}" if key else domain}
    if engine and root == "domain_cfg" and rest[0] == "model_dump":
        return {domain}  # the section, written whole into a model file
    if not engine and (root == "cfg" or (root == "self" and in_section)):
        key = _key(section, rest)
        return {f"{domain}.{key}"} if key else set()
    return set()
