"""Configs of the flow steps that put the RAG router (with online evaluation) in front of the
served LLM and smoke-test the whole stack (light: pydantic only)."""
from __future__ import annotations

from pydantic import Field

from components.config import Config
from serve.online_eval.config import OnlineEvalConfig
from serve.router.config import RouterConfig


def _default_router() -> RouterConfig:
    # The tiny CPU model has a 512-token context: few, short sources.
    return RouterConfig(max_source_chars=300, online_eval=OnlineEvalConfig(sample_rate=1.0, judge_rate=0.0))


class RagServeConfig(Config):
    router: RouterConfig = Field(default_factory=_default_router, description=(
        "The router (index_dir comes from the `index` input; online_eval.tracking_uri defaults to the "
        "flow's MLflow store and feedback_path to <workdir>/.llmflow/state/)."))
    app_name: str = Field("llmflow-rag", description="Serve application name of the router.")
    route_prefix: str = Field("/rag", description="HTTP prefix of the router: <host>/rag/v1/chat/completions.")
    start_timeout_s: float = Field(300.0, gt=0, description="How long to wait for the router's /health.")


class SmokeConfig(Config):
    rag_question: str = Field("What does the assert statement do?", description=(
        "A question the bundled corpus answers: must come back on the grounded route with citations."))
    overflow_questions: list[str] = Field(default_factory=lambda: [
        "What is a generator?", "How do I define a class?", "What is a lambda?",
        "How does exception handling work?", "What are decorators?"], description=(
        "Everyday questions whose top sources together overflow the tiny model's 512-token context (4 of "
        "these 5 got the LLM's 400 before the router budgeted prompts): each must come back 200 on the "
        "grounded route with cited sources, the router dropping or trimming the lowest-ranked ones."))
    off_topic_question: str = Field("Who won the 1998 football world cup final?", description=(
        "A question the corpus cannot answer: must not be answered from sources."))
    plain_prompt: str = Field("The for statement", description="Prompt of the plain completion request.")
    max_tokens: int = Field(24, ge=1, description="Tokens per smoke answer.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request client timeout.")
