"""Config of the online evaluation loop (sampling, judge, drift, alerts, shadow / A-B)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import Config
from components.eval.config import JudgeConfig
from components.eval.drift_monitor import DriftConfig


class ExperimentConfig(Config):
    """Shadow: the candidate gets a mirrored copy, its answer is compared, never returned.
    A/B: the candidate answers ``candidate_share`` of real traffic (sticky per request id)."""

    mode: Literal["off", "shadow", "ab"] = Field("off", description="off | shadow | ab")
    candidate_share: float = Field(0.1, ge=0, le=1, description="A/B: share of requests the candidate answers; "
                                   "shadow: share of requests mirrored to the candidate")
    judge_shadow: bool = Field(True, description="shadow: judge primary vs candidate (both orders) when a judge is set")
    candidate_model: str | None = Field(None, description=(
        "RAG router: the model (or LoRA adapter) name the candidate arm asks the LLM app for, beside the "
        "champion's `router.model`; required when mode is shadow or ab. A/B assignment is sticky per the "
        "request's OpenAI `user` field (the chat page sends one per browser session)."))


class OnlineEvalConfig(Config):
    tracking_uri: str | None = Field(None, description="MLflow URI for traces; None → MLFLOW_TRACKING_URI or ./mlflow.db")
    experiment: str = Field("llmflow-online", description="MLflow experiment holding the traces")
    sample_rate: float = Field(0.1, ge=0, le=1, description="fraction of requests traced and scored "
                               "(deterministic per request id)")
    judge_rate: float = Field(0.2, ge=0, le=1, description="fraction of *sampled* requests also sent to the judge")
    queue_size: int = Field(1000, ge=1, description="bounded backlog; when full, new samples are dropped and counted")
    recent_size: int = Field(2000, ge=1, description="recent unsampled requests kept (raw, in memory) so feedback "
                             "on them can still be traced")
    feedback_path: str = Field("online_feedback.jsonl", description="redacted feedback log (JSONL) the preference "
                               "export reads")
    embed_queries: bool = Field(True, description="embed sampled queries (all-MiniLM-L6-v2) for embedding drift")
    embed_batch: int = Field(32, ge=1, description="embed queries in batches of this size (about 10x less CPU "
                             "per query than one at a time); drift sees them once a batch is full or on flush")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="LLM-as-judge endpoint; unset → skipped")
    drift: DriftConfig = Field(default_factory=DriftConfig, description="drift windows and thresholds")
    alert_webhook: str | None = Field(None, description="POST drift alerts as JSON to this URL (optional)")
    experiment_arms: ExperimentConfig = Field(default_factory=ExperimentConfig, description="shadow / A-B setup")
    metrics_every: int = Field(50, ge=1, description="log per-arm metrics to the monitor run every N samples")

    @model_validator(mode="after")
    def _check(self):
        if self.alert_webhook and not self.alert_webhook.startswith(("http://", "https://")):
            raise ValueError(f"alert_webhook={self.alert_webhook!r} must be an http(s) URL")
        return self
