"""The online evaluation loop: sample live requests off the request path, redact PII, log
MLflow traces, score (heuristics + judge), watch drift, take feedback, export preferences.

The router / LLM ingress calls ``submit(record)`` after it has answered: that is a hash, a
ring-buffer append and a ``put_nowait`` — everything else runs on one background thread.
A Serve deployment wrapping this class is in ``serve/online_eval/app.py``.

    ev = OnlineEvaluator(OnlineEvalConfig(sample_rate=0.1))
    ev.submit(RequestRecord(request_id=rid, query=q, response=a, start_time_ns=t0, end_time_ns=t1))
    ev.feedback(request_id=rid, thumb=+1, comment="great")   # → trace id
    ev.export_preferences("prefs/")                          # → preferences.jsonl for rl.dpo
"""
from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from components.eval import heuristics
from components.eval.drift import DriftResult
from components.eval.drift_monitor import DriftMonitor, Observation
from components.eval.pii import redact_obj
from components.eval.preferences import FeedbackRecord, JudgedPair, export_preferences
from serve.online_eval.config import OnlineEvalConfig

log = logging.getLogger("llmflow.online_eval")


@dataclass
class RequestRecord:
    request_id: str
    query: str
    response: str
    start_time_ns: int
    end_time_ns: int
    messages: list[dict] | None = None
    # What the model was given (the router's grounded prompt with its sources): the prompt a preference
    # pair must train on; None when no model answered (a refusal) or the caller does not know it.
    served_messages: list[dict] | None = None
    context: str = ""
    retrieved_ids: list[str] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    arm: str = "primary"
    model: str = ""
    model_version: str = ""
    prompt_versions: dict[str, str] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        return (self.end_time_ns - self.start_time_ns) / 1e6


def unit_hash(key: str, salt: str) -> float:
    """A stable uniform [0, 1) draw per (request, purpose): sampling is reproducible and sticky."""
    h = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def wilson_ci(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate: sane at small n and at 0 or 1, unlike the normal one."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = float((centre - half) / (1 + z * z / n)), float((centre + half) / (1 + z * z / n))
    # exact at the edges (float rounding left 1 - 2e-16 at p = 1, an interval that excluded its own rate)
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)


def mean_ci(total: float, total_sq: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Normal-approximation 95% interval of a mean from its running sums."""
    mean = total / n
    var = max(0.0, total_sq / n - mean * mean) * n / max(1, n - 1)
    half = z * np.sqrt(var / n)
    return float(mean - half), float(mean + half)


class ArmStats:
    def __init__(self):
        self.n = 0            # sampled requests (traced and scored)
        self.served = 0       # every request answered on this arm
        self.errors = 0       # requests on this arm that failed (5xx or an LLM error)
        self.latency_ms: deque[float] = deque(maxlen=2000)
        self.sums: dict[str, float] = {}
        self.squares: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.thumbs = {"up": 0, "down": 0}
        self.shadow = {"a": 0, "b": 0, "tie": 0, "invalid": 0}  # a = primary wins, b = candidate wins

    def add(self, name: str, value: float) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + value
        self.squares[name] = self.squares.get(name, 0.0) + value * value
        self.counts[name] = self.counts.get(name, 0) + 1

    def summary(self) -> dict[str, float]:
        """Counts, rates and means, each rate and the latency / judge means with a 95% CI (``*_ci_low/high``)."""
        out = {"n": float(self.n), "served": float(self.served), "errors": float(self.errors)}
        if self.served or self.errors:
            attempts = self.served + self.errors
            out["error_rate"] = self.errors / attempts
            out["error_rate_ci_low"], out["error_rate_ci_high"] = wilson_ci(self.errors, attempts)
        if self.latency_ms:
            lat = np.array(self.latency_ms)
            out["latency_p50_ms"], out["latency_p99_ms"] = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
            out["latency_mean_ms"] = float(lat.mean())
            out["latency_mean_ms_ci_low"], out["latency_mean_ms_ci_high"] = mean_ci(
                float(lat.sum()), float((lat * lat).sum()), len(lat))
        for k in self.sums:
            out[f"mean_{k}"] = self.sums[k] / self.counts[k]
        if "judge_overall" in self.counts:
            out["mean_judge_overall_ci_low"], out["mean_judge_overall_ci_high"] = mean_ci(
                self.sums["judge_overall"], self.squares["judge_overall"], self.counts["judge_overall"])
        votes = self.thumbs["up"] + self.thumbs["down"]
        if votes:
            out["votes"] = float(votes)
            out["thumbs_up_rate"] = self.thumbs["up"] / votes
            out["thumbs_up_rate_ci_low"], out["thumbs_up_rate_ci_high"] = wilson_ci(self.thumbs["up"], votes)
        judged = self.shadow["a"] + self.shadow["b"] + self.shadow["tie"]
        if judged:
            # ties count half a win: the rate the promotion rule compares with 0.5
            wins = self.shadow["b"] + 0.5 * self.shadow["tie"]
            out["shadow_judged"] = float(judged)
            out["shadow_candidate_win_rate"] = self.shadow["b"] / judged
            out["shadow_tie_rate"] = self.shadow["tie"] / judged
            out["shadow_candidate_score"] = wins / judged
            out["shadow_candidate_score_ci_low"], out["shadow_candidate_score_ci_high"] = wilson_ci(round(wins), judged)
        if self.shadow["invalid"]:
            out["shadow_invalid"] = float(self.shadow["invalid"])
        return out


class OnlineEvaluator:
    def __init__(self, config: OnlineEvalConfig, judge=None, embed_fn: Callable[[list[str]], np.ndarray] | None = None,
                 prompt_versions: dict[str, str] | None = None):
        from components.tracking.mlflow_tracking import default_tracking_uri
        from components.tracking.traces import TraceLogger, start_monitor_run

        self.config = config
        self.tracking_uri = config.tracking_uri or default_tracking_uri()
        self.traces = TraceLogger(self.tracking_uri, config.experiment)
        self.judge = judge if judge is not None else self._build_judge()
        if embed_fn is None and config.embed_queries:
            from components.rag.embed import Embedder

            embed_fn = Embedder().embed
        self.embed_fn = embed_fn
        self.prompt_versions = prompt_versions or {}
        self.monitor_run_id = start_monitor_run(self.tracking_uri, self.traces.experiment_id, "online-monitor",
                                                {"llmflow.kind": "online_eval",
                                                 "judge": "ran" if self.judge else "skipped"})
        self.drift = DriftMonitor(config.drift)
        self.drift_state: dict[str, DriftResult] = {}
        self.arms: dict[str, ArmStats] = {}
        self.counters = {"submitted": 0, "sampled": 0, "dropped": 0, "processed": 0, "errors": 0,
                         "pii_redactions": 0, "judged": 0}
        self._queue: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._to_embed: list[tuple[str, Observation]] = []  # worker-thread only
        self._recent: OrderedDict[str, RequestRecord] = OrderedDict()
        self._pending: dict[str, Future] = {}
        self._traced: OrderedDict[str, tuple[str, dict]] = OrderedDict()  # request_id → (trace_id, redacted)
        self._votes: dict[tuple[str, str], int] = {}  # (trace_id, user) → thumb, so a new vote replaces the old
        self._lock = threading.Lock()
        self._feedback_path = Path(config.feedback_path)
        self._pairs_path = self._feedback_path.with_name(self._feedback_path.stem + "_judged_pairs.jsonl")
        self._worker = threading.Thread(target=self._run, name="online-eval", daemon=True)
        self._worker.start()

    def _build_judge(self):
        if not self.config.judge.enabled:
            log.info("online eval: no judge endpoint configured (judge.base_url unset): judge scores are skipped")
            return None
        from components.eval.judge import build_judge
        from components.eval.prompt_templates import TEMPLATES
        from components.tracking.prompts import sync_prompt

        prompts = {n: sync_prompt(self.tracking_uri, n, t) for n, t in TEMPLATES.items() if n.startswith("llmflow-judge")}
        return build_judge(self.config.judge, prompts)

    # -- request path -----------------------------------------------------------------
    def submit(self, record: RequestRecord, shadow_response: str | None = None) -> bool:
        """Cheap and non-blocking. Returns whether the request was sampled for tracing."""
        self.counters["submitted"] += 1
        with self._lock:
            self.arms.setdefault(record.arm, ArmStats()).served += 1
        sampled = unit_hash(record.request_id, "sample") < self.config.sample_rate
        if not sampled and shadow_response is None:
            self._keep_recent(record)
            return False
        with self._lock:
            self._pending.setdefault(record.request_id, Future())  # expect() may have made it already
        try:
            self._queue.put_nowait(("request", record, shadow_response))
            self.counters["sampled"] += 1
        except queue.Full:
            self.counters["dropped"] += 1
            self._keep_recent(record)
            return False
        return True

    def expect(self, request_id: str) -> None:
        """The request is answered but its record comes later (a shadow copy still running): feedback on
        it waits for the record instead of answering 404, so a quick vote is not lost."""
        with self._lock:
            self._pending.setdefault(request_id, Future())

    def _keep_recent(self, record: RequestRecord) -> None:
        """Unsampled: keep the raw record for a later vote, and wake a vote already waiting for it."""
        with self._lock:
            self._recent[record.request_id] = record
            if len(self._recent) > self.config.recent_size:
                self._recent.popitem(last=False)
            fut = self._pending.pop(record.request_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def count_error(self, arm: str) -> None:
        """A request on ``arm`` failed (its error rate); cheap, on the request path."""
        with self._lock:
            self.arms.setdefault(arm, ArmStats()).errors += 1

    # -- background worker ------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if job[0] == "drain":
                    self._embed_and_observe()
                else:
                    self._process(*job[1:])
            except Exception:
                self.counters["errors"] += 1
                log.exception("online eval failed on a sample")
                rec = job[1] if job and job[0] == "request" else None
                if rec is not None:
                    fut = self._pending.pop(rec.request_id, None)
                    if fut is not None and not fut.done():
                        fut.set_exception(RuntimeError("tracing this request failed; see the server log"))
            finally:
                self._queue.task_done()

    def _trace(self, record: RequestRecord, scores: dict[str, float], extra_tags: dict[str, str]) -> tuple[str, dict]:
        counts: Counter = Counter()
        red = redact_obj({"query": record.query, "messages": record.messages, "response": record.response,
                          "served_messages": record.served_messages, "context": record.context,
                          "retrieved_ids": record.retrieved_ids}, counts)
        self.counters["pii_redactions"] += sum(counts.values())
        inputs = {"query": red["query"]}
        if red["messages"] is not None:
            inputs["messages"] = red["messages"]
        if red["context"]:
            inputs["context"] = red["context"]
        if red["served_messages"] is not None:
            inputs["served_messages"] = red["served_messages"]
        prompts = {**self.prompt_versions, **record.prompt_versions}
        attrs = {"latency_ms": record.latency_ms, "arm": record.arm, "model": record.model,
                 "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
                 "retrieved_ids": red["retrieved_ids"], **{f"score.{k}": v for k, v in scores.items()}}
        tags = {"llmflow.request_id": record.request_id, "arm": record.arm,
                **({"model_version": record.model_version} if record.model_version else {}),
                "pii.redactions": str(sum(counts.values())), **{f"prompt.{k}": v for k, v in prompts.items()},
                **extra_tags}
        trace_id = self.traces.log_request(inputs=inputs, outputs={"response": red["response"]},
                                           start_time_ns=record.start_time_ns, end_time_ns=record.end_time_ns,
                                           attributes={k: v for k, v in attrs.items() if v is not None},
                                           tags=tags, retrieved_ids=red["retrieved_ids"])
        with self._lock:
            self._traced[record.request_id] = (trace_id, {"prompt": red["query"], "response": red["response"],
                                                          "arm": record.arm, "messages": red["served_messages"]})
            if len(self._traced) > self.config.recent_size:
                self._traced.popitem(last=False)
        return trace_id, red

    def _process(self, record: RequestRecord, shadow_response: str | None) -> None:
        scores = heuristics.heuristic_scores(record.query, record.response, record.context)
        judge_this = self.judge is not None and unit_hash(record.request_id, "judge") < self.config.judge_rate
        trace_id, red = self._trace(record, scores, {"judge": "pending" if judge_this else "skipped"})
        fut = self._pending.pop(record.request_id, None)
        if fut is not None:
            fut.set_result(trace_id)
        arm = self.arms.setdefault(record.arm, ArmStats())
        arm.n += 1
        arm.latency_ms.append(record.latency_ms)
        for k, v in scores.items():
            arm.add(k, v)
        judge_score = None
        if judge_this:
            judge_score = self._judge(trace_id, red, arm)
        if shadow_response is not None:
            self._compare_shadow(record, red, shadow_response, trace_id)
        obs = Observation(query_len=int(scores["query_words"]), response_len=int(scores["response_words"]),
                          refused=bool(scores["refusal"]), words=heuristics.words(red["query"]),
                          judge_score=judge_score)
        if self.embed_fn is None:
            self._observe([obs])
        else:
            self._to_embed.append((red["query"], obs))
            if len(self._to_embed) >= self.config.embed_batch:
                self._embed_and_observe()
        self.counters["processed"] += 1
        if self.counters["processed"] % self.config.metrics_every == 0:
            self.log_arm_metrics()

    def _embed_and_observe(self) -> None:
        if not self._to_embed:
            return
        batch, self._to_embed = self._to_embed, []
        vectors = np.asarray(self.embed_fn([q for q, _ in batch]), dtype=np.float32)
        for (_, obs), v in zip(batch, vectors):
            obs.embedding = v
        self._observe([obs for _, obs in batch])

    def _observe(self, observations: list[Observation]) -> None:
        for obs in observations:
            results = self.drift.observe(obs)
            if results:
                self._handle_drift(results)

    def _judge(self, trace_id: str, red: dict, arm: ArmStats) -> float | None:
        result = self.judge.rubric(question=red["query"], answer=red["response"], context=red["context"] or "")
        self.counters["judged"] += 1
        meta = {"prompt": result.prompt_uri}
        if result.valid:
            self.traces.log_feedback(trace_id, "judge_rubric", result.scores, None, "LLM_JUDGE", "judge", meta)
            self.traces.set_tags(trace_id, {"judge": "scored", "prompt.judge": result.prompt_uri})
            arm.add("judge_overall", result.overall)
            return result.overall
        self.traces.set_tags(trace_id, {"judge": "invalid_reply", "prompt.judge": result.prompt_uri})
        return None

    def _compare_shadow(self, record: RequestRecord, red: dict, shadow_response: str, trace_id: str) -> None:
        shadow_red = redact_obj(shadow_response)
        stats = self.arms.setdefault("shadow", ArmStats())
        stats.n += 1
        for k, v in heuristics.heuristic_scores(record.query, shadow_response, record.context).items():
            stats.add(k, v)
        self.traces.set_tags(trace_id, {"shadow.response_preview": shadow_red[:200]})
        if self.judge is None or not self.config.experiment_arms.judge_shadow:
            return
        res = self.judge.pairwise(red["query"], red["response"], shadow_red)
        stats.shadow[res.verdict] += 1
        self.traces.log_feedback(trace_id, "shadow_pairwise", res.verdict, f"orders={res.first},{res.second}",
                                 "LLM_JUDGE", "judge", {"prompt": res.prompt_uri})
        # Both answered plan["messages"] (the router's served prompt): the pair trains on that prompt.
        pair = JudgedPair(red["query"], red["response"], shadow_red, res.verdict, trace_id, red["served_messages"])
        with self._lock, open(self._pairs_path, "a") as f:
            f.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")

    # -- drift and alerts -----------------------------------------------------------------
    def _handle_drift(self, results: list[DriftResult]) -> None:
        from components.tracking.mlflow_tracking import RunLogger
        from components.tracking.traces import set_experiment_tags

        step = self.counters["processed"]
        RunLogger(self.monitor_run_id, self.tracking_uri).log_metrics(
            {f"drift.{r.feature}.{r.method}": r.statistic for r in results}, step=step)
        for r in results:
            was = self.drift_state.get(r.feature)
            self.drift_state[r.feature] = r
            set_experiment_tags(self.tracking_uri, self.traces.experiment_id,
                                {f"drift.{r.feature}": "ALERT" if r.drifted else "ok"})
            if r.drifted and (was is None or not was.drifted):
                self._alert(r)

    def _alert(self, r: DriftResult) -> None:
        from components.tracking.traces import set_experiment_tags

        msg = r.message()
        log.warning("DRIFT ALERT %s", msg)
        set_experiment_tags(self.tracking_uri, self.traces.experiment_id, {"drift.last_alert": msg})
        if self.config.alert_webhook:
            import httpx

            try:
                httpx.post(self.config.alert_webhook, json={"alert": "drift", **asdict(r), "message": msg}, timeout=5)
            except httpx.HTTPError as e:
                log.warning("drift webhook %s failed: %s", self.config.alert_webhook, e)

    # -- feedback and export ------------------------------------------------------------
    def feedback(self, thumb: int, comment: str = "", request_id: str | None = None, trace_id: str | None = None,
                 user: str = "user", timeout_s: float = 30.0) -> str:
        """Attach a thumbs up (+1) / down (-1) and comment to a request's trace; returns the trace id.

        A request that was not sampled is traced now (from the recent-requests buffer), so
        feedback never goes untraced. One vote per request and user: a second one replaces the
        first in the metrics and in the preference export (the trace keeps both, as history)."""
        if thumb not in (1, -1):
            raise ValueError(f"thumb must be +1 (up) or -1 (down), got {thumb!r}")
        if (request_id is None) == (trace_id is None):
            raise ValueError("give exactly one of request_id or trace_id")
        info = None
        if request_id is not None:
            with self._lock:
                fut = self._pending.get(request_id)
            if fut is not None:
                fut.result(timeout=timeout_s)
            with self._lock:
                recent = None if request_id in self._traced else self._recent.pop(request_id, None)
            if recent is not None:
                self._trace(recent, heuristics.heuristic_scores(recent.query, recent.response, recent.context),
                            {"judge": "skipped", "sampled": "feedback"})
            with self._lock:
                if request_id not in self._traced:
                    raise KeyError(f"unknown request_id {request_id!r}: too old (recent_size="
                                   f"{self.config.recent_size}) or never submitted")
                trace_id, info = self._traced[request_id]
        else:
            with self._lock:
                info = next((i for t, i in self._traced.values() if t == trace_id), None)
            if info is None:
                info = self._info_from_store(trace_id)
        comment_red = redact_obj(comment)
        self.traces.log_feedback(trace_id, "user_feedback", thumb > 0, comment_red or None, "HUMAN", user)
        rec = FeedbackRecord(trace_id, info["prompt"], info["response"], thumb, comment_red, info["arm"], user,
                             info.get("messages"))
        thumbs = self.arms.setdefault(rec.arm, ArmStats()).thumbs
        with self._lock:
            previous = self._votes.get((trace_id, user))
            self._votes[(trace_id, user)] = thumb
            if previous is not None:
                thumbs["up" if previous > 0 else "down"] -= 1
            thumbs["up" if thumb > 0 else "down"] += 1
            # Append-only log; export_preferences keeps each user's last vote per trace.
            with open(self._feedback_path, "a") as f:
                f.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")
        return trace_id

    def _info_from_store(self, trace_id: str) -> dict:
        try:
            stored = json.loads(self.traces.get_trace_json(trace_id))
        except Exception as e:  # noqa: BLE001 - MLflow raises its own types for a malformed or unknown id
            raise KeyError(f"unknown trace_id {trace_id!r}: {e}") from None
        info = stored.get("info", {})
        tags = info.get("tags") or {}
        experiment_id = (info.get("trace_location") or {}).get("mlflow_experiment", {}).get("experiment_id")
        # Only traces of requests this stack served: in this loop's experiment, with a request id.
        if "llmflow.request_id" not in tags or experiment_id != self.traces.experiment_id:
            raise KeyError(f"trace {trace_id!r} is not a request this stack served (experiment "
                           f"{self.config.experiment!r}, tag llmflow.request_id): feedback goes to served requests only")
        root = next(s for s in stored["data"]["spans"] if s.get("parent_span_id") in (None, ""))
        attrs = root.get("attributes", {})
        inputs = json.loads(attrs.get("mlflow.spanInputs", "{}"))
        outputs = json.loads(attrs.get("mlflow.spanOutputs", "{}"))
        return {"prompt": inputs.get("query", ""), "response": outputs.get("response", ""),
                "arm": json.loads(attrs.get("arm", '"primary"')), "messages": inputs.get("served_messages")}

    def export_preferences(self, out_dir: str | Path) -> dict[str, int]:
        """Feedback + judged shadow pairs → ``preferences.jsonl`` (prompt/chosen/rejected) for rl.dpo."""
        def read(path, cls):
            if not path.exists():
                return []
            return [cls(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        return export_preferences(read(self._feedback_path, FeedbackRecord), out_dir, read(self._pairs_path, JudgedPair))

    # -- metrics and lifecycle ----------------------------------------------------------------
    def reset_arms(self) -> None:
        """Start every arm's evidence from zero (the router switched its champion or candidate)."""
        with self._lock:
            self.arms = {}

    def arm_metrics(self) -> dict[str, dict[str, float]]:
        return {name: stats.summary() for name, stats in self.arms.items()}

    def log_arm_metrics(self) -> None:
        from components.tracking.mlflow_tracking import RunLogger

        flat = {f"{arm}.{k}": v for arm, s in self.arm_metrics().items() for k, v in s.items()}
        flat.update({f"loop.{k}": float(v) for k, v in self.counters.items()})
        RunLogger(self.monitor_run_id, self.tracking_uri).log_metrics(flat, step=self.counters["processed"])

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued sample is processed and embedded (tests, shutdown)."""
        self._queue.put(("drain", None, None))
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._queue.unfinished_tasks:
            raise TimeoutError(f"online eval still has {self._queue.unfinished_tasks} samples after {timeout_s}s")
        self.traces.flush()

    def close(self, timeout_s: float = 60.0) -> None:
        self.flush(timeout_s)
        self.log_arm_metrics()
        self._queue.put(None)
        self._worker.join(timeout_s)
        from components.tracking.traces import end_monitor_run

        end_monitor_run(self.tracking_uri, self.monitor_run_id)
