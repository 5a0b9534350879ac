"""The thin layer over DVC's Python API that lets the flow share `dvc.lock` with `dvc repro`.

The flow runs a stage's step in-process, then `commit`s the stage: DVC records the deps and outs
it finds on disk in `dvc.lock`, exactly as `dvc repro` would, so afterwards `dvc status` is clean.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.engine.config import RemoteParams

if TYPE_CHECKING:
    from dvc.repo import Repo

REMOTE_NAME = "flywheel"
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
logging.getLogger("dvc").setLevel(logging.WARNING)  # not "Updating lock file" per stage


def open_repo(root: Path) -> Repo:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise RuntimeError(f"{root}: not a DVC repository (run `dvc init` there)") from None


def _inside(repo: Repo) -> contextlib.chdir:
    """DVC resolves stage paths from the working directory, so work from the repo root."""
    return contextlib.chdir(repo.root_dir)


def is_current(repo: Repo, stage: str) -> bool:
    """True when the stage's deps, params and outs all match its `dvc.lock` entry."""
    with _inside(repo):
        return not repo.status(targets=[stage])


def commit(repo: Repo, stage: str) -> None:
    logging.getLogger("dvc").setLevel(logging.WARNING)  # Prefect's log setup resets it
    with _inside(repo):
        repo.commit(stage, force=True)


def configure_remote(repo: Repo, remote: RemoteParams) -> None:
    """Make `flywheel` the default DVC remote, as params say (no credentials are written)."""
    url = remote.url
    with _inside(repo), repo.config.edit() as conf:
        section: dict[str, Any] = {"url": url}
        if remote.endpoint_url:
            section["endpointurl"] = remote.endpoint_url
        if remote.region:
            section["region"] = remote.region
        conf["remote"][REMOTE_NAME] = section
        conf["core"]["remote"] = REMOTE_NAME


class RemoteError(RuntimeError):
    """The remote could not be reached or refused the upload; the message names it."""


def push(repo: Repo, stages: list[str]) -> int:
    """Upload the outs of `stages` that the remote lacks; returns the number of files sent."""
    section = repo.config["remote"].get(REMOTE_NAME, {})
    where = section.get("url", "?")
    if section.get("endpointurl"):
        where += f" via {section['endpointurl']}"
    try:
        with _inside(repo):
            return int(repo.push(targets=stages, remote=REMOTE_NAME))
    except Exception as error:  # botocore, aiohttp, DVC: name the remote and what to check
        raise RemoteError(
            f"push to DVC remote '{REMOTE_NAME}' ({where}) failed: {error}\n"
            "check remote.url, remote.endpoint_url and remote.region in params.yaml and the "
            "AWS credentials in the environment; rerun to resume (completed steps are kept)"
        ) from error
