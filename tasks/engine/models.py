"""Model files: the network's weights plus the domain config that builds it.

Loaded with `weights_only=True` (invariant 8): a model file can never execute code. A file that is
not one the engine wrote (another tool's checkpoint, an empty or truncated copy, another format)
is refused with a one-line `ModelFileError` naming it and why, before or instead of unpickling.
torch is imported inside the functions, so the step table stays cheap to import (`flywheel step
validate` never loads it).
"""

from __future__ import annotations

import re
import stat
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tasks import domains
from tasks.engine.files import atomic_path, file_md5

if TYPE_CHECKING:
    import torch

MODEL_KEYS = ("domain", "config", "state_dict")
# What torch's weights-only unpickler reports when a file holds a Python object it will not build.
_FOREIGN_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class ModelFileError(ValueError):
    """`<path>: <why>`, one line: the file is not a model this engine wrote (nothing was run)."""

    def __init__(self, path: Path, why: str, prefix: str = "not a dataflywheel model file") -> None:
        super().__init__(f"{path}: {prefix} ({why})" if prefix else f"{path}: {why}")
        self.path = path


def save(network: torch.nn.Module, path: Path, domain: str, domain_cfg: Any, cycle: str) -> str:
    """Write the model file atomically; return its id, `<cycle>:<md5 prefix>`."""
    import torch

    payload = {
        "domain": domain,
        "cycle": cycle,
        "config": domain_cfg.model_dump(mode="json"),
        "state_dict": network.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return model_id(path, cycle)


def model_id(path: Path, cycle: str) -> str:
    return f"{cycle}:{file_md5(path)[:8]}"


def load(path: Path, domain: str | None = None) -> tuple[torch.nn.Module, str, Any]:
    """(network in eval mode, domain name, domain config) from a model file.

    `domain`, when given, is the domain the caller works in: a model of another one is refused.
    """
    payload = _read_payload(path)
    name = payload["domain"]
    if name not in domains.available():
        raise ModelFileError(path, f"unknown domain {name!r}")
    if domain is not None and name != domain:
        raise ModelFileError(path, f"a {name!r} model, but the domain here is {domain!r}", "")
    try:
        cfg = domains.config_class(name).model_validate(payload["config"])
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors()[:3]
        )
        raise ModelFileError(path, f"its {name} config is invalid: {problems}") from None
    network = domains.load(name).build_network(cfg)
    try:
        network.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as error:
        detail = " ".join(str(error).split()[:40])
        raise ModelFileError(path, f"its weights do not fit a {name} network: {detail}") from None
    network.eval()
    return network, name, cfg


def _read_payload(path: Path) -> dict[str, Any]:
    """The dict a model file holds, checked for shape; unpickled only by torch's weights-only
    unpickler, and only once the file is known to be a whole PyTorch archive."""
    import torch

    pickle_member = _check_archive(path)
    try:
        with warnings.catch_warnings():  # its notes on pickle protocols: the error below says it
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged archive fails in many ways; none of them ran code
        raise ModelFileError(path, _load_failure(error, path, pickle_member)) from None
    if not isinstance(payload, dict) or not all(key in payload for key in MODEL_KEYS):
        keys = ", ".join(repr(k) for k in list(payload)[:6]) if isinstance(payload, dict) else ""
        held = f"a dict of {keys}" if keys else type(payload).__name__
        raise ModelFileError(path, f"it holds {held}, without the entries {', '.join(MODEL_KEYS)}")
    if not isinstance(payload["domain"], str) or not isinstance(payload["config"], dict):
        raise ModelFileError(path, "its 'domain' or 'config' entry has the wrong type")
    return payload


def _check_archive(path: Path) -> str:
    """The archive's pickle member, or why the file cannot be a model file, read without
    unpickling anything."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.is_dir():
        inside = path / "model.pt"
        hint = f"; the model in it is {inside}" if inside.is_file() else ""
        raise ModelFileError(path, f"a directory{hint}")
    if not stat.S_ISREG(path.stat().st_mode):
        raise ModelFileError(path, "not a regular file (a pipe or device); save it to a file first")
    with path.open("rb") as handle:
        head = handle.read(512)
    if not head:
        raise ModelFileError(path, "an empty file, 0 bytes: an interrupted copy?")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(path, _other_format(head))
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if not members:
        raise ModelFileError(path, "a zip archive, but not one PyTorch wrote")
    return members[0]


def _other_format(head: bytes) -> str:
    """What a file that is not a whole zip archive seems to be, from its first bytes."""
    if head.startswith(b"PK"):
        return "a truncated or damaged archive: its end is missing"
    if head.startswith(b"\x80"):
        return "a bare pickle, not a PyTorch archive; not unpickled, as that could run code"
    if head.startswith(b"PAR1"):
        return "a parquet file"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a PyTorch archive"
    return "a text file"


def _load_failure(error: BaseException, path: Path, pickle_member: str) -> str:
    """Why torch refused the file, in one line and without its advice to lift the guard."""
    text = str(error)
    lightning = _mentions(path, pickle_member, b"pytorch-lightning_version")
    subject = "a Lightning checkpoint holding" if lightning else "it holds"
    if match := _FOREIGN_GLOBAL.search(text):
        return (
            f"{subject} a pickled Python object, {match[1]}, which a model file of this project "
            "never holds; not loaded, as building it could run code"
        )
    if "weights_only" in text or "Weights only" in text:
        return f"{subject} pickled Python objects; not loaded, as building them could run code"
    return _one_line(error)


def _mentions(path: Path, member: str, needle: bytes) -> bool:
    """Whether the archive's pickle names `needle` (a plain byte search: nothing is unpickled)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return needle in archive.read(member)
    except (OSError, zipfile.BadZipFile, KeyError):
        return False


def _one_line(error: BaseException) -> str:
    """The first sentence of an error, whitespace folded, at most 200 characters."""
    text = " ".join(str(error).split())
    first = re.split(r"(?<=[.:])\s", text, maxsplit=1)[0] if len(text) > 200 else text
    return first[:200] or type(error).__name__
