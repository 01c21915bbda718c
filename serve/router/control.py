"""The router's live routing state: which model is the champion and what the candidate arm does
(off / shadow / A-B), changed while the router serves, with one command to roll back.

Why a state file and not a redeploy: ``serve.run`` of a Python-built app gets a new code version each
time, so Serve replaces the router's replicas (stop, then start: a one-replica router is down meanwhile)
and every replica pays its index copy and embedder warm-up again. Here nothing restarts: every replica
re-reads the file when it changes (checked at most every ``poll_s`` on the request path, a ``stat``) and
swaps its routing between two requests, so no request fails during a switch.

The file (JSON, replaced atomically) holds the current ``RoutingState`` and the states it replaced::

    python -m serve.router.control show <path>        # what the router serves now, and the history
    python -m serve.router.control rollback <path>    # back to the state before the last switch

The path is ``router.control_path``; ``serve.rag`` puts it beside the feedback log
(``<workdir>/.llmflow/state/online/router_control.json``).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pydantic import Field

from components.config import Config
from serve.online_eval.config import ExperimentConfig

MAX_HISTORY = 50


class RoutingState(Config):
    model: str | None = Field(None, description="The champion: the model (or adapter) name the router asks for.")
    model_version: str | None = Field(None, description="Its registry version, shown on the page and traces.")
    arms: ExperimentConfig = Field(default_factory=ExperimentConfig, description="The candidate arm.")
    adapters: dict[str, str] = Field(default_factory=dict, description=(
        "Adapters the flywheel loaded into the running engine (name -> directory), beside the ones its "
        "endpoint.json lists: where a champion or candidate name's weights are."))
    reason: str = Field("", description="Why the state was set (the flywheel step's decision).")
    set_at: float = Field(0.0, description="Unix time of the switch.")


def read(path: str | Path) -> dict | None:
    """The file's content ({"current": ..., "history": [...]}) or None when there is none yet."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(path)  # atomic: a replica reads the old state or the new one, never half


def current(path: str | Path) -> RoutingState | None:
    doc = read(path)
    return RoutingState.model_validate(doc["current"]) if doc else None


def deploy(path: str | Path, state: RoutingState) -> RoutingState:
    """The state at deploy time. A redeployed stack starts from its config, not from the file: adapters the
    flywheel loaded into the old engine are gone with it. The file's earlier states stay as history."""
    doc = read(path) or {"current": None, "history": []}
    history = ([doc["current"]] if doc["current"] else []) + doc["history"]
    state = state.model_copy(update={"set_at": time.time()})
    _write(Path(path), {"current": state.model_dump(), "history": history[:MAX_HISTORY]})
    return state


def switch(path: str | Path, reason: str, **changes) -> RoutingState:
    """Change the routing (``model``, ``model_version``, ``arms``); the replaced state goes on the history."""
    doc = read(path)
    if doc is None:
        raise FileNotFoundError(f"{path}: no routing state yet; the router (serve.rag with router.control_path) "
                                "writes it at deploy time")
    old = RoutingState.model_validate(doc["current"])
    if "arms" in changes and isinstance(changes["arms"], dict):
        changes["arms"] = ExperimentConfig.model_validate(changes["arms"])
    new = old.model_copy(update={**changes, "reason": reason, "set_at": time.time()})
    RoutingState.model_validate(new.model_dump())  # a bad change fails here, not in the replicas
    _write(Path(path), {"current": new.model_dump(), "history": [doc["current"], *doc["history"]][:MAX_HISTORY]})
    return new


def rollback(path: str | Path) -> RoutingState:
    """Back to the state before the last switch (the replaced one is dropped from the history)."""
    doc = read(path)
    if not doc or not doc["history"]:
        raise ValueError(f"{path}: nothing to roll back to (no earlier routing state)")
    previous, *rest = doc["history"]
    back = RoutingState.model_validate(previous).model_copy(
        update={"reason": f"rollback of: {doc['current'].get('reason', '')}", "set_at": time.time()})
    _write(Path(path), {"current": back.model_dump(), "history": rest})
    return back


class ControlWatcher:
    """A replica's view of the file: ``poll()`` returns a new state when the file changed, else None."""

    def __init__(self, path: str | Path, poll_s: float):
        self.path, self.poll_s = Path(path), poll_s
        self._checked, self._mtime = 0.0, None

    def poll(self) -> RoutingState | None:
        now = time.monotonic()
        if now - self._checked < self.poll_s:
            return None
        self._checked = now
        try:
            st = self.path.stat()
            # the inode too: every write is a new file (rename), and mtimes are only as fine as the kernel tick
            mtime = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            return None
        if mtime == self._mtime:
            return None
        try:
            state = current(self.path)
        except (ValueError, KeyError):  # never half-written (atomic rename); a hand edit gone wrong keeps the old
            return None
        self._mtime = mtime
        return state


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("show", "rollback"):
        print("usage: python -m serve.router.control {show|rollback} <router_control.json>", file=sys.stderr)
        return 2
    if argv[0] == "rollback":
        state = rollback(argv[1])
        print(f"rolled back: the router now serves {state.model!r} ({state.model_version or 'no version'}), "
              f"candidate arm {state.arms.mode}")
        return 0
    print(json.dumps(read(argv[1]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
