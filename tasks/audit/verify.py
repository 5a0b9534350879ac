"""`flywheel lineage verify`: does the record still hold? Every broken link, named.

What is checked, and against what:

- The ledger's chain: every line a record, each record hashing to its `sha256`, each `seq` one
  more than the last, each `prev_sha256` the hash before it (an edited, removed or reordered
  line). A torn last line (an interrupted write) is named too; the next run moves it aside.
- The chain heads on the remote: each push left one (see `tasks/engine/lineage.py`); the local
  record at each head's `seq` must hash to it. A history rewritten from some record on, with
  freshly recomputed hashes, verifies by itself but no longer ends in the pushed heads; a
  deleted last line or ledger lacks records the remote holds. Only the names are read unless
  `--remote` (then each segment is fetched and compared record by record). An unreachable
  remote is a warning without `--remote` (so an audit works offline) and a broken link with it.
- dvc.lock (the root's and each cycle's `pipeline/<cycle>/dvc.lock`) against the workspace:
  every out of every stage is recomputed (a directory file by
  file against its `.dir` manifest in the cache, so the broken file is named); a missing out is
  broken. Code deps (tasks/...) are git's business, not checked here.
- dvc.lock against the ledger: every stage has a record whose outputs are what dvc.lock holds.
- The DVC cache: every object named by dvc.lock or the ledger that the cache holds is
  recomputed (one byte changed in a cache object is found even when the workspace is intact).
- Models: each model's training snapshot and eval set, as dvc.lock and the ledger record them
  (train and evaluate stages' inputs), must still exist, in the workspace or the cache.
- With `--remote`: every object dvc.lock names is fetched from the remote and recomputed.

Read-only, and light: PyYAML, the engine's hashing and, for the remote, DVC (no ML library).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.engine import fingerprint, lineage
from tasks.engine.files import file_md5
from tasks.engine.integrity import Cache, Content, differing, producer, short
from tasks.engine.layout import Layout

LEDGER = "lineage/ledger.jsonl"
SNAPSHOT = "/snapshot.json"
"""A cycle's training set: a manifest of its shards (tasks/steps/snapshot.py)."""
Stages = dict[str, dict[str, Any]]
"""dvc.lock's `stages`: name -> entry (cmd, deps, params, outs)."""


class NotAWorkspace(ValueError):
    """The folder is not a flywheel workspace (no dvc.yaml and .dvc/)."""


@dataclass(frozen=True)
class Broken:
    """One broken link: the file, what is wrong, and the stage and ledger record it concerns."""

    file: str
    what: str
    stage: str | None = None
    record: int | None = None

    def line(self) -> str:
        about = [f"stage {self.stage}"] if self.stage else []
        about += [f"ledger record {self.record}"] if self.record is not None else []
        return f"{self.file}: {self.what}" + (f" ({', '.join(about)})" if about else "")


@dataclass
class Report:
    broken: list[Broken] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        state = f"{len(self.broken)} broken link(s)" if self.broken else "intact"
        counted = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        return f"lineage verify: {state} ({counted})"


@dataclass
class LedgerIndex:
    """The ledger, loaded once, with the indexes the checks need."""

    loaded: lineage.Loaded
    by_seq: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_stage: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    naming: dict[tuple[str | None, str, str], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, path: Path) -> LedgerIndex:
        index = cls(lineage.load(path))
        for record in index.loaded.records:
            index.by_seq.setdefault(record.get("seq", -1), record)
            stage = record.get("stage")
            index.by_stage[str(stage)].append(record)
            for paths in (record.get("inputs") or {}, record.get("outputs") or {}):
                for rel, md5 in paths.items():  # the newest wins
                    index.naming[(None, rel, md5)] = index.naming[(stage, rel, md5)] = record
        return index

    def record_for(self, stage: str | None, rel: str, md5: str | None) -> int | None:
        """The stage's record that names `rel` with `md5`, else any record that does, else the
        stage's newest one."""
        found = self.naming.get((stage, rel, md5 or "")) or self.naming.get((None, rel, md5 or ""))
        if found is None and stage in self.by_stage:
            found = self.by_stage[stage][-1]
        return found.get("seq") if found else None


class _Workspace:
    """Content of workspace paths and cache objects, each hashed once."""

    def __init__(self, root: Path) -> None:
        self.root, self.cache = root, Cache.of(root)
        self._content: dict[str, Content | None] = {}
        self._objects: dict[str, str | None] = {}

    def content(self, rel: str) -> Content | None:
        if rel not in self._content:
            path = self.root / rel
            self._content[rel] = Content.of(path) if path.exists() else None
        return self._content[rel]

    def object_md5(self, md5: str) -> str | None:
        """What the cache object named `md5` hashes to (None: the cache lacks it)."""
        if md5 not in self._objects:
            path = self.cache.path(md5)
            self._objects[md5] = file_md5(path) if path.is_file() else None
        return self._objects[md5]

    def holds(self, rel: str, md5: str) -> bool:
        """The recorded content still exists: in the workspace, or whole in the cache."""
        here = self.content(rel)
        if here is not None and here.md5 == md5:
            return True
        if self.object_md5(md5) != md5.removesuffix(".dir"):
            return False
        manifest = self.cache.manifest(md5) if md5.endswith(".dir") else {}
        return manifest is not None and all(self.object_md5(m) == m for m in manifest.values())


def _lock(root: Path) -> Stages:
    """Every stage entry of the workspace's `dvc.lock` files (the root's, then each cycle's).
    Raises NotAWorkspace naming the file that is not valid YAML."""
    from tasks.engine.dvcrepo import lock_files

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: Stages = {}
    for path in lock_files(root):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            at = f"line {mark.line + 1}: " if mark is not None else ""
            what = getattr(error, "problem", None) or type(error).__name__
            raise NotAWorkspace(f"{path}: not valid YAML ({at}{what})") from None
        stages = data.get("stages") if isinstance(data, dict) else None
        found.update(stages if isinstance(stages, dict) else {})
    return found


def _entries(stage: dict[str, Any], kind: str) -> dict[str, str]:
    return {e["path"]: e["md5"] for e in stage.get(kind) or [] if "md5" in e and "path" in e}


def _ranges(seqs: list[int]) -> str:
    """[3, 4, 5, 9] -> "records 3..5, 9"; [7] -> "record 7"."""
    spans: list[list[int]] = []
    for seq in sorted(seqs):
        if spans and seq == spans[-1][1] + 1:
            spans[-1][1] = seq
        else:
            spans.append([seq, seq])
    shown = ", ".join(f"{a}..{b}" if a != b else str(a) for a, b in spans)
    return f"record{'s' if len(seqs) > 1 else ''} {shown}"


def check_chain(index: LedgerIndex) -> list[Broken]:
    """Every line a record; each record hashing to its sha256, chained to the record before it
    in sequence, and in order; no sequence number missing."""
    broken = [Broken(LEDGER, str(p)) for p in index.loaded.problems]  # torn or unreadable
    seen: set[int] = set()
    top = -1
    for line, record in zip(index.loaded.lines, index.loaded.records, strict=True):
        seq, stage = record.get("seq"), record.get("stage")
        wrong = []
        if record.get("sha256") != lineage.record_sha(record):
            wrong.append("its content does not hash to its sha256 (edited)")
        if not isinstance(seq, int) or seq in seen:
            wrong.append(f"record {seq} appears twice")
        elif seq < top:
            wrong.append(f"record {seq} comes after record {top} (reordered)")
        else:
            skipped = list(range(top + 1, seq))
            gone = [s for s in skipped if s not in index.by_seq]
            if gone:
                wrong.append(f"{_ranges(gone)} missing before it (removed)")
            elif skipped:
                wrong.append(f"it comes before {_ranges(skipped)} (reordered)")
            before = index.by_seq.get(seq - 1) if seq else {"sha256": lineage.GENESIS}
            if before is not None and record.get("prev_sha256") != before.get("sha256"):
                wrong.append(f"it does not chain to record {seq - 1} (that one was replaced)")
            top = seq
        if isinstance(seq, int):
            seen.add(seq)
        if wrong:
            broken.append(Broken(LEDGER, f"line {line}: " + "; ".join(wrong), stage, seq))
    return broken


def _recorded_files(ws: _Workspace, lock: Stages) -> dict[str, str]:
    """md5 -> the first path dvc.lock records with those bytes (files, and files of dirs)."""
    found: dict[str, str] = {}
    for entry in lock.values():
        for rel, md5 in _entries(entry, "outs").items():
            if not md5.endswith(".dir"):
                found.setdefault(md5, rel)
            for inner, inner_md5 in (ws.cache.manifest(md5) or {}).items():
                found.setdefault(inner_md5, f"{rel}/{inner}")
    return found


def check_outs(ws: _Workspace, lock: Stages, index: LedgerIndex) -> list[Broken]:
    """Every out dvc.lock records is in the workspace with those bytes, file by file; bytes
    that belong to another recorded file (a model swapped for another cycle's) say whose."""
    broken: list[Broken] = []
    known: dict[str, str] | None = None
    for stage, entry in lock.items():
        for rel, md5 in _entries(entry, "outs").items():
            record = index.record_for(stage, rel, md5)
            here = ws.content(rel)
            if here is None:
                what = f"missing from the workspace (recorded {short(md5)})"
                broken.append(Broken(rel, what, stage, record))
                continue
            if here.md5 == md5:
                continue
            manifest = ws.cache.manifest(md5) if here.files is not None else None
            if manifest is None or here.files is None:
                found = [("", here.md5, f"md5 {short(here.md5)}, dvc.lock records {short(md5)}")]
            else:
                found = [
                    (f"/{inner}", here.files.get(inner, ""), what)
                    for inner, what in differing(here.files, manifest)
                ]
            known = _recorded_files(ws, lock) if known is None else known
            for inner, now, what in found:
                other = known.get(now)
                if other and other != rel + inner:
                    what += f" (the bytes of {other})"
                broken.append(Broken(rel + inner, what, stage, record))
    return broken


def check_records(index: LedgerIndex, lock: Stages) -> list[Broken]:
    """Every stage dvc.lock lists has a ledger record whose outputs are what dvc.lock holds (a
    step's fingerprint stage has none: every record names its code version and params hash)."""
    lock = {stage: entry for stage, entry in lock.items() if not fingerprint.is_stage(stage)}
    if lock and not index.loaded.records:
        what = f"no records, but dvc.lock lists {len(lock)} stages (the ledger was deleted?)"
        return [Broken(LEDGER, what)]
    broken = []
    for stage, entry in lock.items():
        outs = _entries(entry, "outs")
        records = index.by_stage.get(stage, [])
        if not records:
            broken.append(Broken(LEDGER, "no record of this stage, which dvc.lock lists", stage))
        elif not any(
            all(r.get("outputs", {}).get(p, m) == m for p, m in outs.items()) for r in records
        ):
            what = "no record of this stage names the outputs dvc.lock records"
            broken.append(Broken(LEDGER, what, stage, records[-1].get("seq")))
    return broken


def check_cache(ws: _Workspace, lock: Stages, index: LedgerIndex) -> list[Broken]:
    """Every object dvc.lock or the ledger names that the cache holds recomputes to its name."""
    named: dict[str, dict[str, str | None]] = defaultdict(dict)  # md5 -> {path: stage}
    layout = Layout(ws.root)
    for name, entry in lock.items():
        for rel, md5 in {**_entries(entry, "outs"), **_entries(entry, "deps")}.items():
            if producer(layout, rel) is not None:  # data, not code
                named[md5].setdefault(rel, name)
    for record in index.loaded.records:
        for paths in (record.get("outputs") or {}, record.get("inputs") or {}):
            for rel, md5 in paths.items():
                named[md5].setdefault(rel, record.get("stage"))
    for md5, users in list(named.items()):
        manifest = ws.cache.manifest(md5) if md5.endswith(".dir") else None
        for inner, inner_md5 in (manifest or {}).items():
            for rel, stage in users.items():
                named[inner_md5].setdefault(f"{rel}/{inner}", stage)
    broken = []
    for md5, users in named.items():
        found = ws.object_md5(md5)
        if found is None or found == md5.removesuffix(".dir"):
            continue
        (rel, stage), *others = users.items()
        cached = Path(os.path.relpath(ws.cache.path(md5), ws.root)).as_posix()
        what = f"its DVC cache object {cached} holds other bytes (md5 {short(found)})"
        if others:
            listed = [other for other, _ in others[:3]]
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            what += f"; the same object backs {', '.join(listed)}{more}"
        broken.append(Broken(rel, what, stage, index.record_for(stage, rel, md5)))
    return broken


def check_models(ws: _Workspace, lock: Stages, index: LedgerIndex) -> list[Broken]:
    """Each model's training snapshot and eval set, as dvc.lock and the ledger record them
    (the train and evaluate stages' data), still exist: in the workspace, or whole in the cache."""
    used: dict[tuple[str, str], tuple[str | None, int | None]] = {}  # (path, md5) -> where
    kinds = (SNAPSHOT, "/eval.parquet")
    for stage, entry in lock.items():
        if stage.split("@")[0] in ("bootstrap", "train", "evaluate"):
            for rel, md5 in {**_entries(entry, "deps"), **_entries(entry, "outs")}.items():
                if rel.endswith(kinds):
                    used.setdefault((rel, md5), (stage, index.record_for(stage, rel, md5)))
    for record in index.loaded.records:
        if record.get("step") in ("bootstrap", "train", "evaluate"):
            for paths in (record.get("inputs") or {}, record.get("outputs") or {}):
                for rel, md5 in paths.items():
                    if rel.endswith(kinds):
                        used.setdefault((rel, md5), (record.get("stage"), record.get("seq")))
    broken, shards_seen = [], set()
    for (rel, md5), (by, seq) in sorted(used.items()):
        if not ws.holds(rel, md5):
            what = "training snapshot" if rel.endswith(SNAPSHOT) else "eval set"
            gone = f"a model's {what} (md5 {short(md5)}) is in neither the workspace nor the cache"
            broken.append(Broken(rel, gone, by, seq))
        elif rel.endswith(SNAPSHOT):
            for name, shard in _shards(ws, rel, md5).items():
                key = (str(shard.get("path", "")), str(shard.get("md5", "")))
                if key in shards_seen:
                    continue  # every later snapshot lists the shard again
                shards_seen.add(key)
                if ws.holds(*key):
                    continue
                gone = (
                    f"shard {name} of the training snapshot {rel} (md5 {short(key[1])}) is in "
                    "neither the workspace nor the cache"
                )
                broken.append(Broken(key[0], gone, by, seq))
    return broken


def _shards(ws: _Workspace, rel: str, md5: str) -> dict[str, dict[str, Any]]:
    """The shards a snapshot manifest with this md5 lists (from the workspace or the cache)."""
    here = ws.content(rel)
    source = ws.root / rel if here is not None and here.md5 == md5 else ws.cache.path(md5)
    try:
        shards = json.loads(source.read_text(encoding="utf-8")).get("shards")
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(shards, dict):
        return {}
    return {name: s for name, s in shards.items() if isinstance(s, dict)}


def _divergence(
    index: LedgerIndex, head: lineage.Head, records: list[dict[str, Any]]
) -> Broken | None:
    """The first pushed record the local ledger holds differently."""
    for pushed in records:
        local = index.by_seq.get(pushed["seq"])
        if local is not None and local.get("sha256") != pushed["sha256"]:
            what = (
                f"record {pushed['seq']} differs from the copy pushed to the remote "
                f"({head.name}): the history was rewritten from here on"
            )
            return Broken(LEDGER, what, local.get("stage"), pushed["seq"])
    return None


def check_heads(index: LedgerIndex, store: Any, fetch: bool) -> tuple[list[Broken], int]:
    """The local ledger holds every chain head the pushes left on the remote (`fetch`: and
    every pushed record, fetched and compared one by one)."""
    heads: list[lineage.Head] = store.heads()
    broken, first = [], 0
    for head in heads:
        if head.first != first:
            what = f"lacks the segment of records {first}..{head.first - 1}"
            broken.append(Broken(f"{store.where}/", what, record=first))
        first = head.last + 1
    absent = [s for h in heads for s in range(h.first, h.last + 1) if s not in index.by_seq]
    if absent:
        what = f"lacks {_ranges(absent)}, which the remote holds (removed, truncated or deleted)"
        broken.append(Broken(LEDGER, what, record=absent[0]))
    differ = [h for h in heads if index.by_seq.get(h.last, {}).get("sha256", h.sha256) != h.sha256]
    diverged = None
    for number, head in enumerate(heads if fetch else differ[:1]):
        try:
            records = lineage.segment_records(head, store.fetch(head))
        except (OSError, lineage.LedgerError) as error:
            broken.append(Broken(f"{store.where}/{head.name}", f"unreadable: {error}"))
            continue
        before = heads[number - 1].sha256 if number else lineage.GENESIS
        if fetch and records[0].get("prev_sha256") != before:
            what = "does not chain to the segment before it"
            broken.append(Broken(f"{store.where}/{head.name}", what, record=head.first))
        diverged = diverged or _divergence(index, head, records)
    if diverged is None and differ:  # the segment could not be read: the head is the evidence
        head = differ[0]
        diverged = Broken(
            LEDGER,
            f"record {head.last} is not the chain head pushed ({head.name})",
            None,
            head.last,
        )
    return broken + ([diverged] if diverged else []), len(heads)


def check_remote_objects(
    ws: _Workspace, lock: Stages, index: LedgerIndex, remote: Any
) -> tuple[list[Broken], int]:
    """Every object dvc.lock's outs name, fetched from the remote and recomputed."""
    fs, where = remote.fs, remote.fs.unstrip_protocol(remote.path)
    wanted: dict[str, list[tuple[str, str]]] = defaultdict(list)  # md5 -> [(path, stage)]
    for stage, entry in lock.items():
        if fingerprint.is_stage(stage):
            continue  # not in DVC's cache (`cache: false`), so never pushed
        for rel, md5 in _entries(entry, "outs").items():
            wanted[md5].append((rel, stage))
    broken, fetched = [], 0
    queue = list(wanted)
    while queue:
        md5 = queue.pop(0)
        (rel, stage), *others = wanted[md5]
        key = f"files/md5/{md5[:2]}/{md5[2:]}"
        record = index.record_for(stage, rel, md5)
        also = f"; the same object backs {', '.join(p for p, _ in others[:3])}" if others else ""
        also += f" and {len(others) - 3} more" if len(others) > 3 else ""
        try:
            data = bytes(fs.cat_file(fs.join(remote.path, *key.split("/"))))
        except FileNotFoundError:
            broken.append(Broken(rel, f"not on the remote ({where}/{key}){also}", stage, record))
            continue
        fetched += 1
        found = hashlib.md5(data).hexdigest()
        if found != md5.removesuffix(".dir"):
            what = f"the remote's object {where}/{key} holds other bytes (md5 {short(found)})"
            broken.append(Broken(rel, what + also, stage, record))
        elif md5.endswith(".dir"):
            for item in json.loads(data):
                if item["md5"] not in wanted:
                    queue.append(item["md5"])
                for user, user_stage in wanted[md5]:
                    wanted[item["md5"]].append((f"{user}/{item['relpath']}", user_stage))
    return broken, fetched


def verify(root: Path, remote: bool = False) -> Report:
    """Every check above; `remote` also fetches the pushed segments and objects."""
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        raise NotAWorkspace(f"{root}: not a flywheel workspace (no dvc.yaml and .dvc/ there)")
    lock = _lock(root)
    index, ws = LedgerIndex.of(Layout(root).ledger), _Workspace(root)
    report = Report()
    for check in (check_outs, check_cache, check_models):
        report.broken += check(ws, lock, index)
    report.broken[:0] = check_chain(index) + check_records(index, lock)
    report.counts = {
        "ledger records": len(index.loaded.records),
        "stages": len(lock),
        "paths": len(ws._content),
        "cache objects": len(ws._objects),
    }
    try:
        from tasks.engine import dvcrepo

        repo = dvcrepo.open_repo(root)
        broken, heads = check_heads(index, dvcrepo.ledger_store(repo), fetch=remote)
        report.broken += broken
        report.counts["remote chain heads"] = heads
        if remote:
            name = dvcrepo.REMOTE_NAME if dvcrepo.REMOTE_NAME in repo.config["remote"] else None
            broken, fetched = check_remote_objects(ws, lock, index, repo.cloud.get_remote(name))
            report.broken += broken
            report.counts["remote objects"] = fetched
    except Exception as error:  # no remote, or unreachable: DVC, botocore, aiohttp
        said = str(error).splitlines()[0] if str(error) else type(error).__name__
        problem = f"cannot read the remote: {said}"
        if remote:
            report.broken.append(Broken("remote", problem))
        else:
            report.warnings.append(f"chain heads not compared ({problem})")
    return report
