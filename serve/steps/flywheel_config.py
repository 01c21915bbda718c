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
