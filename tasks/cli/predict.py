"""predict: JSON lines in, one prediction (or error) per line out, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from tasks import domains
from tasks.engine import models


def stream(model_path: Path, lines: TextIO, out: TextIO) -> int:
    """Answer every input line; return how many failed. A bad line never stops the rest."""
    network, name, domain_cfg = models.load(model_path)
    domain = domains.load(name)
    failed = 0
    for line in lines:
        try:
            request = json.loads(line)
            answer = domain.predict(network, request, domain_cfg)
        except (ValueError, TypeError) as error:
            failed += 1
            answer = {"error": str(error) or type(error).__name__}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return failed
