"""Config of the RAG router deployment (light: pydantic only)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.config import Config
from components.rag.config import RetrievalConfig
from serve.online_eval.config import OnlineEvalConfig


class RouterConfig(Config):
    """How the router retrieves, routes and calls the LLM."""

    index_dir: str | None = Field(None, description="A rag.index artifact directory (index.json + the Edge shard "
                                  "and its snapshot, or qdrant/ for local mode), or its artifact URI on an object store (s3://..., fetched "
                                  "to the replica's node); in a flow the serve.rag step fills "
                                  "it from its `index` input.")
    index_reload_s: float = Field(2.0, ge=0, description=(
        "Edge index: how often each replica checks the artifact for a rebuild (a new build_id in index.json) "
        "and swaps to it atomically while serving; 0 = never."))
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig, description="Search settings.")
    relevance_threshold: float = Field(0.35, ge=-1, le=1, description=(
        "Cosine similarity (query vs chunk, all-MiniLM-L6-v2) the best source must reach for a grounded "
        "answer. ~0.3-0.4 separates on-topic from off-topic queries on the stdlib docs."))
    fallback: Literal["generate", "refuse"] = Field("refuse", description=(
        "Below the threshold: 'generate' answers from the model alone, 'refuse' says it doesn't know "
        "without calling the LLM."))
    answer_mode: Literal["generate", "quote"] = Field("generate", description=(
        "How a grounded answer is decoded. 'generate': free text. 'quote': constrained (vLLM structured "
        "outputs, `choice`) to one sentence of a source shown in the prompt, as '[n] <sentence>' "
        "(components.grounded.quote_choices): the model picks the sentence; a model too small to copy "
        "text on its own (the laptop flow's) then answers only in its sources' words. The response's "
        "`rag.answer_mode` says which mode produced it."))
    refusal_text: str = Field("I don't know: none of the indexed documents is relevant to this question.",
                              description="The answer of the 'refuse' route.")
    max_query_chars: int = Field(2000, ge=1, description="Longer queries are rejected with 413.")
    max_source_chars: int = Field(1500, ge=50, description="Each source's text is cut to this in the prompt.")
    model: str | None = Field(None, description="LLM model (or adapter) name to request; None = the base model.")
    model_version: str | None = Field(None, description=(
        "Registry version of the served model (e.g. 'llmflow-rag v3'): shown on the chat page and recorded "
        "on every trace as `model_version`, so feedback names the model it judged."))
    default_max_tokens: int = Field(128, ge=1, description=(
        "max_tokens when the request sets none (shrunk to what a long question leaves of the context)."))
    tokenizer: str | None = Field(None, description=(
        "HF tokenizer directory of the served model (normally its model directory): every prompt is counted "
        "with it and its chat template exactly as vLLM will, and the lowest-ranked sources are dropped or "
        "trimmed so prompt + max_tokens <= max_model_len. serve.rag fills it (and max_model_len) from the "
        "LLM's endpoint.json. None, with max_model_len None, turns budgeting off: sources are cut only by "
        "max_source_chars and a prompt over the context gets the LLM's 400."))
    max_model_len: int | None = Field(None, ge=16, description=(
        "Context length of the served model in tokens (prompt + answer), as the LLM was started with; "
        "set together with `tokenizer`."))
    min_source_tokens: int = Field(16, ge=1, description=(
        "A source trimmed to fit the context must keep at least this many tokens, else it is dropped "
        "(the top source is kept whenever any of it fits)."))
    search_timeout_s: float = Field(3.0, gt=0, description=(
        "Bound on embed + search; past it (or when Qdrant is down) the router answers 503."))
    lock_wait_s: float = Field(10.0, ge=0, description=(
        "Local-mode index: how long a replica waits for a writer's lock before failing to start."))
    num_replicas: int = Field(1, ge=1, description="Router replicas (each holds a private index snapshot in local mode).")
    num_cpus: float = Field(1.0, ge=0, description="CPUs per router replica (query embedding runs there).")
    max_inflight: int | None = Field(None, ge=1, description=(
        "Chat requests one router replica works on at once; more get 429 with Retry-After. None: the LLM's "
        "admission limit (max_num_seqs + max_engine_waiting, times its replicas) split over the router's "
        "replicas, as more would only come back 429 from the LLM; serve.rag reads it from the LLM's "
        "endpoint.json, serve.router.app:build_app from the llm config, other callers get the default LLM's."))
    control_path: str | None = Field(None, description=(
        "Live routing state (serve.router.control): the champion model/version and the candidate arm, switched "
        "while serving without a redeploy; `python -m serve.router.control rollback <path>` undoes a switch. "
        "None: the routing is this config's, fixed. serve.rag sets it beside the feedback log."))
    control_poll_s: float = Field(0.5, gt=0, description="How often a replica checks control_path for a switch.")
    online_eval: OnlineEvalConfig | None = Field(None, description=(
        "Evaluate live traffic off the request path (sampled traces, heuristics, judge, drift, feedback "
        "at POST /feedback); None turns the loop off."))

    @model_validator(mode="after")
    def _arms_need_a_candidate(self) -> RouterConfig:
        arms = self.online_eval.experiment_arms if self.online_eval else None
        if arms is not None and arms.mode != "off" and not arms.candidate_model:
            raise ValueError(f"router.online_eval.experiment_arms.mode={arms.mode!r} needs "
                             "experiment_arms.candidate_model (the candidate's model or adapter name on the LLM "
                             "app); set it, or mode: off")
        return self

    @model_validator(mode="after")
    def _budget_needs_both(self) -> RouterConfig:
        if (self.tokenizer is None) != (self.max_model_len is None):
            raise ValueError(
                f"router.tokenizer={self.tokenizer!r} and router.max_model_len={self.max_model_len!r}: prompt "
                "budgeting needs both (the served model's tokenizer directory and its context length); set "
                "both, or neither to turn budgeting off")
        return self
