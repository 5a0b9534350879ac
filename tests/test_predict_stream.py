"""`flywheel predict` takes JSON lines as they come: blanks, a BOM, CRLF, bad bytes, bad JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tasks.cli.app import app
from tests.test_model_files import save_digits_model

DATA = Path(__file__).parent / "data"
PLAIN = (DATA / "requests_plain.jsonl").read_bytes()
REQUESTS = PLAIN.splitlines()  # three valid digits requests
runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_digits_model(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="module")
def answers(model: Path) -> list[dict[str, Any]]:
    """The answers to the three plain requests, one line each, read as the stream writes them."""
    code, records = predict(model, PLAIN)
    assert code == 0 and len(records) == 3 and all("label" in r for r in records)
    return records


def predict(model: Path, stdin: bytes) -> tuple[int, list[dict[str, Any]]]:
    result = runner.invoke(app, ["predict", "--model", str(model)], input=stdin)
    assert result.stderr == ""
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()]


def test_a_trailing_blank_line_is_skipped(model: Path, answers: list[dict[str, Any]]) -> None:
    blob = (DATA / "requests_trailing_blank.jsonl").read_bytes()
    assert blob.endswith(b"\n\n")  # the field case: three requests, then an empty line
    assert predict(model, blob) == (0, answers)


def test_a_byte_order_mark_and_windows_line_ends_are_accepted(
    model: Path, answers: list[dict[str, Any]]
) -> None:
    assert predict(model, b"\xef\xbb\xbf" + b"\r\n".join(REQUESTS) + b"\r\n") == (0, answers)


def test_only_blank_lines_answer_nothing(model: Path) -> None:
    assert predict(model, b"\n  \t\r\n\r\n") == (0, [])


BAD_LINES: list[tuple[bytes, str | None]] = [  # (input line, its error, or None when answered)
    (REQUESTS[0], None),
    (b"", None),
    (b"   \t ", None),
    (b"[" * 100_000, "JSON nested too deeply"),
    (b'{"pixels": "\xff\xfe"}', "not UTF-8 text: byte 0xff at byte 13 of the line"),
    (b"[1, 2]", "expected a JSON object, got an array"),
    (b'"hello"', "expected a JSON object, got a string"),
    (b"null", "expected a JSON object, got null"),
    (b"42", "expected a JSON object, got a number"),
    (b'{"pixels": [1,', "not valid JSON: Expecting value at column 15"),
    (b'{"pixels": [NaN]}', "not valid JSON: NaN is not a JSON number"),
    (REQUESTS[1], None),
    (json.dumps({"pixels": [99] * 64}).encode(), "pixels must lie in 0-16"),
    (b"", None),
    (REQUESTS[2], None),
]


def test_every_bad_line_is_an_error_record_in_place(
    model: Path, answers: list[dict[str, Any]]
) -> None:
    stdin = b"\xef\xbb\xbf" + b"\r\n".join(line for line, _ in BAD_LINES) + b"\r\n"
    code, records = predict(model, stdin)
    assert code == 1
    valid = iter(answers)
    expected = [
        {"line": number, "error": error} if error else next(valid)
        for number, (line, error) in enumerate(BAD_LINES, start=1)
        if line.strip() or error
    ]
    assert records == expected  # one record per non-blank line, in order, lines counted 1-based


def test_the_real_command_under_a_strict_utf8_locale(
    model: Path, answers: list[dict[str, Any]]
) -> None:
    """`flywheel` itself, where Python would decode stdin strictly: bad bytes stay one record."""
    env = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"}
    stdin = b"\xef\xbb\xbf" + REQUESTS[0] + b"\r\n\xe9t\xe9\r\n\r\n" + REQUESTS[1] + b"\n\n"
    done = subprocess.run(
        [Path(sys.executable).parent / "flywheel", "predict", "--model", str(model)],
        input=stdin,
        capture_output=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == b""
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records == [
        answers[0],
        {"line": 2, "error": "not UTF-8 text: byte 0xe9 at byte 1 of the line"},
        answers[1],
    ]
