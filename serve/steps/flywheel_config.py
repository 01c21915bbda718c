"""Configs of the flywheel's steps (light: pydantic only)."""
from __future__ import annotations

from pydantic import Field

from components.config import Config
from serve.online_eval.rules import PromotionRules


class FlywheelExportConfig(Config):
    min_pairs: int = Field(8, ge=1, description=(
        "A turn with fewer preference pairs since the last turn stops here, with a message, instead of "
        "training on noise."))
    include_judged: bool = Field(True, description="Add the judge's shadow verdicts as pairs (source: judge).")


class FlywheelDecideConfig(Config):
    rules: PromotionRules = Field(default_factory=PromotionRules, description="When to promote or roll back.")
    timeout_s: float = Field(30.0, gt=0, description="Timeout of the metrics request to the router.")


class AttachConfig(Config):
    artifact: str = Field("", description=(
        "An artifact directory of the flow that runs the stack (its serve.deploy / serve.rag endpoint, its "
        "model or eval data), e.g. <workdir>/.llmflow/artifacts/<step>/<hash>: this turn reads it in place."))


class TrialConfig(Config):
    candidate_prefix: str = Field("flywheel", description=(
        "The candidate's adapter name on the LLM app: <prefix>-<8 hex of its artifact path>."))
    shadow_share: float = Field(1.0, ge=0, le=1, description="Shadow phase: share of requests mirrored to it.")
    min_judged_pairs: int = Field(20, ge=0, description=(
        "Shadow phase ends once this many shadow pairs are judged (0 skips the shadow phase)."))
    ab_share: float = Field(0.5, gt=0, le=1, description="A/B phase: share of users the candidate answers.")
    min_votes_per_arm: int = Field(10, ge=0, description=(
        "A/B phase ends once each arm has this many thumbs (0 ends it at once)."))
    phase_timeout_s: float = Field(1800.0, gt=0, description=(
        "Longest wait for a phase's evidence; then the turn goes on to flywheel.decide, which waits (keeps the "
        "A/B running and the votes for the next turn) when the evidence is short."))
    poll_s: float = Field(2.0, gt=0, description="How often the live metrics are read while waiting.")
    timeout_s: float = Field(120.0, gt=0, description="Timeout of one request to the LLM app or router.")


class ChampionConfig(Config):
    """flywheel.champion reads everything from its inputs and the router's routing state."""
