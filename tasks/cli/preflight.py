"""Checks before any work: the environment, not the product, may be broken (a Prefect server
that is down, a temporary API too slow to start). Each failure is one line saying what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class PreflightError(RuntimeError):
    """The environment is not ready; the message names what is wrong and what to do."""


def prefect_defaults() -> None:
    """Sane defaults for the ephemeral API on a small machine (DESIGN.md); env wins."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")


_EPHEMERAL_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"
_UNSET_URL = "unset PREFECT_API_URL to run with a temporary local API"


def prefect_ready(echo: Callable[[str], None]) -> None:
    """Reach the Prefect API before any work, or say in one line what to do: the server that
    PREFECT_API_URL names must answer; without one, the temporary API must start in time."""
    url, where = os.environ.get("PREFECT_API_URL"), "PREFECT_API_URL"
    if not url:  # Prefect's settings: a profile, .env or prefect.toml may name a server too
        from prefect.settings import PREFECT_API_URL

        url, where = PREFECT_API_URL.value(), "PREFECT_API_URL (from Prefect's settings)"
    if url:
        problem = unanswered(url)
        if problem:
            raise PreflightError(
                f"{where}={url}: {problem}; start that server (`prefect server start`) or "
                f"{_UNSET_URL}"
            )
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_ENABLED

    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return  # Prefect itself says that it needs PREFECT_API_URL
    server = SubprocessASGIServer()  # the one the flow's client then finds running
    echo("starting a temporary Prefect API (PREFECT_API_URL is not set)")
    try:
        server.start()
    except RuntimeError as error:
        said = prefect_problem(error) or f"the temporary Prefect API failed: {error}"
        raise PreflightError(said.splitlines()[0]) from None


def unanswered(url: str, timeout: float = 3.0) -> str | None:
    """Why `url` is not a Prefect API that answers, or None when its /health does (or when it
    asks for credentials, which Prefect's own client sends)."""
    import ssl
    import urllib.error
    import urllib.request

    if url.startswith("https://api.prefect.cloud/"):
        return None  # Prefect Cloud: its client checks it with the account's key
    health = f"{url.rstrip('/')}/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:  # a proxy answers too: only Prefect's answer counts
        if error.code in (401, 403):
            return None
        return f"{health} answered HTTP {error.code}, not as a Prefect API (whose URL ends in /api)"
    except urllib.error.URLError as error:
        if isinstance(error.reason, ssl.SSLError):
            return None
        return f"no answer ({getattr(error.reason, 'strerror', None) or error.reason})"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except (ValueError, OSError) as error:  # not an http(s) URL at all
        return f"not a usable URL ({error})"


def prefect_problem(error: BaseException) -> str | None:
    """One line for Prefect's own "cannot reach the API" errors, or None for any other."""
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as STARTUP

    seen: BaseException | None = error
    while seen is not None:
        said = str(seen)
        if said.startswith(_EPHEMERAL_TIMEOUT):
            return (
                f"the temporary Prefect API did not start within {STARTUP.value()} s; raise "
                f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (e.g. to 600), or start a "
                f"server (`prefect server start`) and set PREFECT_API_URL to it"
            )
        if "Failed to reach API at" in said:
            where = said[said.index("Failed to reach API at") :].splitlines()[0].rstrip(".")
            return f"{where}; start that server (`prefect server start`) or {_UNSET_URL}"
        seen = seen.__cause__ or seen.__context__
    return None
