"""Configs for evaluation: the judge endpoint, the offline eval step and its promotion gate.

Light on purpose: recipes validate against these without importing torch or MLflow.
"""
from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from components.config import Config
from components.rag.config import RetrievalConfig

LOWER_IS_BETTER = {"perplexity", "loss", "refusal_rate"}


class JudgeConfig(Config):
    """An OpenAI-compatible chat endpoint used as LLM-as-judge. No ``base_url`` → judge skipped."""

    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
                                 "(our own served model works). None: the judge is skipped and reported as skipped.")
    model: str = Field("judge", description="model name sent in the request")
    api_key_env: str | None = Field(None, description="environment variable holding the API key; None for "
                                    "servers that need no key (a local vLLM)")
    timeout_s: float = Field(60.0, gt=0, description="per-request timeout in seconds")
    max_tokens: int = Field(64, ge=1, description="max tokens of a judge reply")
    constrained_choice: bool = Field(False, description="send vLLM's structured_outputs.choice so every verdict "
                                     "is a valid label (pairwise: A/B/T; rubric: one 1-5 call per criterion)")
    max_concurrency: int = Field(4, ge=1, description="parallel judge requests")

    @model_validator(mode="after")
    def _key_present(self):
        if self.base_url and self.api_key_env and not os.environ.get(self.api_key_env):
            raise ValueError(f"judge.api_key_env={self.api_key_env!r} but that variable is unset: export it, "
                             "or set api_key_env: null for a server that needs no key")
        return self

    @property
    def enabled(self) -> bool:
        return self.base_url is not None


class GateConfig(Config):
    """Candidate vs champion (MLflow registry aliases) → promote or not."""

    enabled: bool = Field(True, description="run the gate; false only writes the report")
    registered_model: str = Field("llmflow-chat", description="MLflow registered model name")
    champion_alias: str = Field("champion", description="alias of the model in production")
    candidate_alias: str = Field("candidate", description="alias set on every evaluated version")
    metric: str = Field("f1", description="primary metric from the report the gate compares "
                        "(e.g. f1, rougeL, judge_overall, perplexity); lower-is-better for perplexity/loss")
    min_delta: float = Field(0.0, ge=0, description="candidate must beat the champion (or, for the first "
                             "model, the base model it was trained from) by more than this")
    floor: float | None = Field(None, description="the first model (no champion yet) must score better than "
                                "this on `metric`: an absolute bar, so a model that learned nothing is never "
                                "promoted. None: 0 for higher-is-better metrics (f1 = 0 never wins), no bar for "
                                "lower-is-better ones")
    guard_metrics: dict[str, float] = Field(default_factory=dict, description="metric → largest allowed "
                                            "regression vs the champion (absolute), e.g. {exact_match: 0.02}")

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    @property
    def effective_floor(self) -> float | None:
        if self.floor is not None:
            return self.floor
        return 0.0 if self.higher_is_better else None


class RagEvalConfig(Config):
    """Offline RAG groundedness, run when ``eval.offline``'s optional ``index`` input is wired."""

    retrieval: RetrievalConfig = Field(default_factory=lambda: RetrievalConfig(top_k=3),
                                       description="search for each eval question (same engine as the router)")
    max_source_chars: int = Field(400, ge=50, description="each source's text is cut to this in the grounded "
                                  "prompt (the router's template, llmflow-rag)")
    max_prompt_tokens: int | None = Field(None, ge=16, description="keep at most this many prompt tokens (the "
                                          "question end is kept); None → the model's max_position_embeddings "
                                          "minus max_new_tokens")
    answer_mode: Literal["generate", "quote"] = Field("generate", description=(
        "As the router's `answer_mode`, so the gate scores answers decoded as they will be served: "
        "'quote' picks one '[n] <sentence>' of the shown sources (components.grounded.quote_choices) by "
        "greedy search over the choices' tokens, as vLLM's choice grammar does; 'generate': free text."))
    indexed_only: bool = Field(True, description=(
        "Ask only questions whose source document the index holds (every answer can then be found in the "
        "sources); False: all eval.jsonl rows. In the e2e flow the index holds the 79 pydoc topics and "
        "eval.jsonl is mostly module docs: 2 of 16 questions had their source indexed."))


class OfflineEvalConfig(Config):
    """``eval.offline``: perplexity, EM/F1, BLEU/ROUGE, judge; then the gate."""

    max_questions: int = Field(32, ge=1, description="eval.jsonl rows to answer and score")
    max_new_tokens: int = Field(48, ge=1, description="generation length for answers")
    batch_size: int = Field(8, ge=1, description="generation / perplexity batch size")
    max_ppl_blocks: int = Field(64, ge=1, description="validation token blocks used for perplexity")
    use_chat_template: bool = Field(True, description="wrap questions in the tokenizer's chat template")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="LLM-as-judge endpoint")
    pairwise_against: Literal["reference", "none"] = Field(
        "reference", description="pairwise judge: compare each answer against the reference answer "
        "(both orders) or skip pairwise")
    gate: GateConfig = Field(default_factory=GateConfig, description="promotion gate")
    rag: RagEvalConfig = Field(default_factory=RagEvalConfig, description="RAG groundedness (needs the `index` "
                               "input): retrieval hit rate, lexical and judged groundedness, F1 with sources")
    mlflow_genai: bool = Field(True, description="also score the answers with mlflow.genai.evaluate (EM, F1, "
                               "groundedness as MLflow scorers → per-row assessments in the MLflow UI)")
    seed: int = Field(0, description="seed for sampling questions")


class FeedbackPrefsConfig(Config):
    """``eval.feedback_prefs``: the online loop's feedback log → a ``prefs`` artifact for rl.dpo."""

    feedback_path: str = Field("online_feedback.jsonl", description="the online loop's redacted feedback log "
                               "(OnlineEvalConfig.feedback_path)")
    judged_pairs_path: str | None = Field(None, description="judged shadow pairs log; None → "
                                          "<feedback stem>_judged_pairs.jsonl next to the feedback log")
    min_pairs: int = Field(1, ge=0, description="fail the step when fewer pairs than this were produced")
