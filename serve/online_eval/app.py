"""HTTP surface of the online loop, and a Ray Serve deployment that hosts it.

Routes (``feedback_routes(evaluator)`` returns a FastAPI ``APIRouter`` any ingress can mount):
  POST /feedback          {"request_id" | "trace_id", "thumb": "up"|"down"|1|-1, "comment"} → {"trace_id"}
  GET  /online/metrics    per-arm metrics, loop counters, drift state
  POST /online/export     {"out_dir"} → preference dataset for rl.dpo (preferences.jsonl …)

``OnlineEvalDeployment`` is the Serve deployment: the router holds a handle and calls
``handle.submit.remote(record_dict)`` without awaiting it (off the request path).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from serve.online_eval.config import OnlineEvalConfig
from serve.online_eval.evaluator import OnlineEvaluator, RequestRecord


class FeedbackIn(BaseModel):
    request_id: str | None = Field(None, description="the id the ingress returned with the answer")
    trace_id: str | None = Field(None, description="an MLflow trace id (alternative to request_id)")
    thumb: Literal["up", "down", 1, -1] = Field(description="thumbs up or down")
    comment: str = Field("", max_length=4000, description="free text; PII is redacted before storage")
    user: str = Field("user", max_length=200, description=(
        "who gave the feedback (the assessment's source; one vote per request and user, a repeat replaces it). "
        "The RAG router ignores it and records the authenticated caller instead (`voter_of`)."))


class ExportIn(BaseModel):
    out_dir: str = Field(description="folder to write preferences.jsonl, failures.jsonl, report.json into")


def voter_of(authorization: str | None, auth_required: bool) -> str:
    """Who votes: the holder of the bearer key that passed the router's check, as a short digest of it
    (never the key); ``anonymous`` only where the operator turned auth off (a local demo)."""
    import hashlib

    if not auth_required:
        return "anonymous"
    token = (authorization or "").partition(" ")[2].strip()
    return "key:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def do_feedback(evaluator: OnlineEvaluator, body: FeedbackIn):
    """``{"trace_id"}``, or an OpenAI-shaped error response (404 unknown request, 422 bad vote).

    A user's second vote on a request replaces the first (``OnlineEvaluator.feedback``)."""
    from fastapi.responses import JSONResponse

    from serve.errors import error_body

    thumb = 1 if body.thumb in ("up", 1) else -1
    try:
        return {"trace_id": evaluator.feedback(thumb, body.comment, body.request_id, body.trace_id, body.user)}
    except KeyError as e:
        return JSONResponse(error_body(str(e.args[0]) if e.args else str(e), "invalid_request_error", 404, "request_id"), 404)
    except ValueError as e:
        return JSONResponse(error_body(str(e), "invalid_request_error", 422), 422)


def metrics_view(evaluator: OnlineEvaluator) -> dict:
    return {"arms": evaluator.arm_metrics(), "counters": evaluator.counters,
            "drift": {k: {"statistic": r.statistic, "threshold": r.threshold, "drifted": r.drifted}
                      for k, r in evaluator.drift_state.items()}}


def feedback_routes(evaluator: OnlineEvaluator):
    """The routes as an APIRouter, for ingresses that host the evaluator in-process."""
    from fastapi import APIRouter
    from starlette.concurrency import run_in_threadpool

    router = APIRouter()

    @router.post("/feedback")
    async def feedback(body: FeedbackIn) -> dict:
        return await run_in_threadpool(do_feedback, evaluator, body)

    @router.get("/online/metrics")
    async def metrics() -> dict:
        return metrics_view(evaluator)

    @router.post("/online/export")
    async def export(body: ExportIn) -> dict:
        return await run_in_threadpool(evaluator.export_preferences, body.out_dir)

    return router


def online_eval_deployment(config: OnlineEvalConfig):
    """The bound Serve deployment hosting one evaluator (one replica: drift windows are per process).

    Other deployments take it as a constructor argument and get a handle; they call
    ``handle.submit.remote(asdict(record))`` and never await it."""
    from fastapi import FastAPI
    from ray import serve

    app = FastAPI(title="llmflow online eval")

    @serve.deployment(name="OnlineEval", num_replicas=1, ray_actor_options={"num_cpus": 0.5})
    @serve.ingress(app)
    class OnlineEvalDeployment:
        def __init__(self, config_dict: dict):
            self.evaluator = OnlineEvaluator(OnlineEvalConfig.model_validate(config_dict))

        def submit(self, record: dict, shadow_response: str | None = None) -> bool:
            return self.evaluator.submit(RequestRecord(**record), shadow_response)

        def feedback(self, thumb: int, comment: str = "", request_id: str | None = None,
                     trace_id: str | None = None) -> str:
            return self.evaluator.feedback(thumb, comment, request_id, trace_id)

        def export_preferences(self, out_dir: str) -> dict:
            return self.evaluator.export_preferences(out_dir)

        def flush(self) -> dict:
            self.evaluator.flush()
            return dict(self.evaluator.counters)

        @app.post("/feedback")
        def http_feedback(self, body: FeedbackIn) -> dict:
            return do_feedback(self.evaluator, body)

        @app.get("/online/metrics")
        def http_metrics(self) -> dict:
            return metrics_view(self.evaluator)

        @app.post("/online/export")
        def http_export(self, body: ExportIn) -> dict:
            return self.evaluator.export_preferences(body.out_dir)

        def __del__(self):
            self.evaluator.close(timeout_s=10)

    return OnlineEvalDeployment.bind(config.model_dump())
