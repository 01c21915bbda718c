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

from serve.online_eval import OnlineEvaluator, RequestRecord
from serve.online_eval_config import OnlineEvalConfig


class FeedbackIn(BaseModel):
    request_id: str | None = Field(None, description="the id the ingress returned with the answer")
    trace_id: str | None = Field(None, description="an MLflow trace id (alternative to request_id)")
    thumb: Literal["up", "down", 1, -1] = Field(description="thumbs up or down")
    comment: str = Field("", max_length=4000, description="free text; PII is redacted before storage")
    user: str = Field("user", description="who gave the feedback (stored as the assessment source)")


class ExportIn(BaseModel):
    out_dir: str = Field(description="folder to write preferences.jsonl, failures.jsonl, report.json into")


def feedback_routes(evaluator: OnlineEvaluator):
    from fastapi import APIRouter, HTTPException
    from starlette.concurrency import run_in_threadpool

    router = APIRouter()

    @router.post("/feedback")
    async def feedback(body: FeedbackIn) -> dict:
        thumb = 1 if body.thumb in ("up", 1) else -1
        try:
            trace_id = await run_in_threadpool(evaluator.feedback, thumb, body.comment, body.request_id,
                                               body.trace_id, body.user)
        except KeyError as e:
            raise HTTPException(404, str(e)) from e
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        return {"trace_id": trace_id}

    @router.get("/online/metrics")
    async def metrics() -> dict:
        return {"arms": evaluator.arm_metrics(), "counters": evaluator.counters,
                "drift": {k: {"statistic": r.statistic, "threshold": r.threshold, "drifted": r.drifted}
                          for k, r in evaluator.drift_state.items()}}

    @router.post("/online/export")
    async def export(body: ExportIn) -> dict:
        return await run_in_threadpool(evaluator.export_preferences, body.out_dir)

    return router


def online_eval_deployment(config: OnlineEvalConfig):
    """A Serve deployment class hosting one evaluator (one replica: drift windows are per process)."""
    from fastapi import FastAPI
    from ray import serve

    app = FastAPI(title="llmflow online eval")

    @serve.deployment(name="OnlineEval", num_replicas=1, ray_actor_options={"num_cpus": 0.5})
    @serve.ingress(app)
    class OnlineEvalDeployment:
        def __init__(self, config_dict: dict):
            self.evaluator = OnlineEvaluator(OnlineEvalConfig.model_validate(config_dict))
            app.include_router(feedback_routes(self.evaluator))

        def submit(self, record: dict, shadow_response: str | None = None) -> bool:
            return self.evaluator.submit(RequestRecord(**record), shadow_response)

        def feedback(self, thumb: int, comment: str = "", request_id: str | None = None,
                     trace_id: str | None = None) -> str:
            return self.evaluator.feedback(thumb, comment, request_id, trace_id)

        def export_preferences(self, out_dir: str) -> dict:
            return self.evaluator.export_preferences(out_dir)

        def __del__(self):
            self.evaluator.close(timeout_s=10)

    return OnlineEvalDeployment.bind(config.model_dump())
