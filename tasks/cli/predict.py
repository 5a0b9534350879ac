"""predict: JSON lines in, one prediction (or error) per line out, in order.

Input is read as bytes and decoded line by line, so neither the locale nor one bad line can end
the stream. Blank lines are skipped; a UTF-8 byte-order mark and Windows line ends are accepted.
Every other line gets exactly one output line; an error record names its input line (1-based,
blank lines counted), so a caller can find the request it answers.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from tasks import domains
from tasks.engine import models


class BadLine(ValueError):
    """An input line that is not a JSON object; its message goes into the line's error record."""


def stream(model_path: Path, lines: Iterable[bytes], out: TextIO) -> int:
    """Answer every non-blank line; return how many failed. A bad line never stops the rest."""
    network, name, domain_cfg = models.load(model_path)
    domain = domains.load(name)
    failed = 0
    for number, raw in enumerate(lines, start=1):
        try:
            request = parse_line(raw)
            if request is None:
                continue
            answer = domain.predict(network, request, domain_cfg)
        except Exception as error:  # one request's failure is its own record, never the stream's
            failed += 1
            answer = {"line": number, "error": describe(error)}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return failed


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The request on one input line, None for a blank line, or `BadLine` saying what is wrong."""
    raw = raw.removeprefix(codecs.BOM_UTF8)  # at the start of a file, or of each concatenated one
    raw = raw.rstrip(b"\r\n")  # LF or CRLF: the line's end is not part of its request
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadLine(
            f"not UTF-8 text: byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line"
        ) from None
    if not text.strip():
        return None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadLine("JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise BadLine(f"not valid JSON: {error.msg} at column {error.colno}") from None
    if not isinstance(value, dict):
        raise BadLine(f"expected a JSON object, got {_json_kind(value)}")
    return value


def describe(error: Exception) -> str:
    """The error record's message: the domain's own words, or the error's type when it has none."""
    if isinstance(error, ValueError | TypeError):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _no_constant(name: str) -> Any:
    raise BadLine(f"not valid JSON: {name} is not a JSON number")


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")
