"""``llmflow submit``: a recipe as a Ray job (the Jobs API that ``ray job submit`` uses).

The job's entrypoint is ``llmflow run RECIPE --set ...`` run on the head node, in a copy of
the submitting directory (``runtime_env.working_dir``), with the environment of
``cluster/runtime_env.yaml`` plus ``--env`` overrides. The driver then reaches the cluster
through the ``RAY_ADDRESS`` the job supervisor sets, so its steps spread over every node.

    job_id = submit_recipe("http://head:8265", "e2e", workdir=Path("."))
    status = follow("http://head:8265", job_id, print)   # streams the logs until the job ends
"""
from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from flows.recipe import RECIPES_DIR, resolve_recipe_path

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def entrypoint(recipe: str, workdir: Path, overrides: list[str]) -> str:
    """``llmflow run ...`` with the recipe named as the job's working dir will hold it."""
    path = resolve_recipe_path(recipe).resolve()
    if path.parent == RECIPES_DIR.resolve():
        arg = path.stem  # a shipped recipe: the job's own copy of flows/recipes has it
    else:
        try:
            arg = str(path.relative_to(Path(workdir).resolve()))
        except ValueError:
            raise ValueError(f"recipe {path} is outside the working dir {Path(workdir).resolve()}, which is all "
                             "the cluster receives: move the recipe into it (or submit from its folder)") from None
    return shlex.join(["llmflow", "run", arg, *(a for s in overrides for a in ("--set", s))])


def runtime_env(workdir: Path, env_file: Path | None, env: dict[str, str]) -> dict:
    """``working_dir`` = ``workdir``, with the excludes and env vars of ``env_file``; ``env`` wins."""
    base = yaml.safe_load(env_file.read_text()) if env_file is not None and env_file.exists() else {}
    base = dict(base or {})
    base["working_dir"] = str(Path(workdir).resolve())
    base["env_vars"] = {**(base.get("env_vars") or {}), **env}
    return base


def client(address: str):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)


def submit_recipe(address: str, recipe: str, *, workdir: Path, overrides: list[str] = (),
                  env_file: Path | None = None, env: dict[str, str] | None = None,
                  submission_id: str | None = None) -> str:
    """Submit ``llmflow run RECIPE`` to the cluster at ``address``; returns the job's submission id."""
    return client(address).submit_job(
        entrypoint=entrypoint(recipe, workdir, list(overrides)),
        runtime_env=runtime_env(workdir, env_file, dict(env or {})),
        submission_id=submission_id,
        metadata={"llmflow.recipe": str(recipe)},
    )


def follow(address: str, job_id: str, write: Callable[[str], None], timeout_s: float | None = None) -> str:
    """Stream the job's logs through ``write`` until it ends; returns its final status."""
    jobs = client(address)

    async def tail() -> None:
        async for chunk in jobs.tail_job_logs(job_id):
            write(chunk)

    try:
        asyncio.run(asyncio.wait_for(tail(), timeout_s))
    except TimeoutError:
        return str(jobs.get_job_status(job_id))
    # The log stream closes as the job ends; the status may trail it by a moment.
    deadline = time.monotonic() + 30
    status = str(jobs.get_job_status(job_id))
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(jobs.get_job_status(job_id))
    return status


def job_info(address: str, job_id: str) -> dict:
    """Status, entrypoint, times and message of one job (what ``llmflow status --job`` shows)."""
    info = client(address).get_job_info(job_id)
    return {"job_id": job_id, "status": str(info.status), "entrypoint": info.entrypoint,
            "start_time": info.start_time, "end_time": info.end_time, "message": info.message or "",
            "driver_node_id": getattr(info, "driver_node_id", None)}
