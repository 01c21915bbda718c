"""The online evaluator in its own process, for ingresses that run without Ray Serve.

Tracing, embedding and drift checks are Python- and CPU-heavy; in the serving process
they hold the GIL the request threads need. ``OnlineEvalProcess`` keeps only a queue
``put`` on the request path and runs ``OnlineEvaluator`` in a spawned child — what the
Serve deployment (``serve/online_eval/app.py``) gives for free with a separate replica.

    ev = OnlineEvalProcess(OnlineEvalConfig(sample_rate=0.1))
    ev.submit(record)                       # non-blocking
    trace_id = ev.feedback(+1, "thanks", request_id=rid)
    ev.close()
"""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import threading
from typing import Any

from serve.online_eval.config import OnlineEvalConfig
from serve.online_eval.evaluator import RequestRecord


def _child(config_dict: dict, inbox, outbox, parent_pid: int) -> None:
    from serve.online_eval.evaluator import OnlineEvaluator

    ev = OnlineEvaluator(OnlineEvalConfig.model_validate(config_dict))
    outbox.put(("ready", None, None))
    while True:
        try:
            msg = inbox.get(timeout=5)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the server died without close(): do not linger as an orphan
                ev.close(timeout_s=30)
                return
            continue
        if msg[0] == "submit":
            ev.submit(msg[1], msg[2])
            continue
        _, call_id, method, args, kwargs = msg
        try:
            outbox.put((call_id, True, getattr(ev, method)(*args, **kwargs)))
        except Exception as e:  # noqa: BLE001 - returned to the caller and re-raised there
            outbox.put((call_id, False, e))
        if method == "close":
            return


class OnlineEvalProcess:
    def __init__(self, config: OnlineEvalConfig, start_timeout_s: float = 300.0):
        ctx = mp.get_context("spawn")
        self._inbox, self._outbox = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(target=_child, args=(config.model_dump(), self._inbox, self._outbox, os.getpid()),
                                 name="online-eval", daemon=True)
        self._proc.start()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        tag, _, _ = self._outbox.get(timeout=start_timeout_s)
        assert tag == "ready", tag

    def submit(self, record: RequestRecord, shadow_response: str | None = None) -> None:
        self._inbox.put(("submit", record, shadow_response))

    def _call(self, method: str, *args, timeout_s: float = 120.0, **kwargs) -> Any:
        with self._lock:  # one call in flight: replies come back in order
            call_id = next(self._ids)
            self._inbox.put(("call", call_id, method, args, kwargs))
            got, ok, value = self._outbox.get(timeout=timeout_s)
        assert got == call_id, (got, call_id)
        if not ok:
            raise value
        return value

    def feedback(self, thumb: int, comment: str = "", request_id: str | None = None,
                 trace_id: str | None = None, user: str = "user") -> str:
        return self._call("feedback", thumb, comment, request_id, trace_id, user)

    def export_preferences(self, out_dir: str) -> dict:
        return self._call("export_preferences", str(out_dir))

    def arm_metrics(self) -> dict:
        return self._call("arm_metrics")

    def counters(self) -> dict:
        return self._call("__getattribute__", "counters")

    def flush(self, timeout_s: float = 120.0) -> None:
        self._call("flush", timeout_s, timeout_s=timeout_s + 10)

    def close(self, timeout_s: float = 120.0) -> None:
        if self._proc.is_alive():
            self._call("close", timeout_s, timeout_s=timeout_s + 10)
            self._proc.join(timeout_s)
