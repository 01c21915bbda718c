"""Shadow and A/B routing with per-arm metrics, feeding the online evaluator.

- ``ab``: a sticky ``candidate_share`` of request ids is answered by the candidate; each
  record carries its arm, so latency / heuristic / judge / thumbs metrics split by arm.
- ``shadow``: the primary answers everyone; a ``candidate_share`` of requests is mirrored to
  the candidate in a background task whose answer is compared (heuristics, both-order judge)
  and never returned.

Answer functions are ``async (messages) -> Answer``; ``openai_answer_fn`` wraps any
OpenAI-compatible endpoint (our LLM deployment's HTTP API included).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from serve.online_eval.config import ExperimentConfig
from serve.online_eval.evaluator import OnlineEvaluator, RequestRecord, unit_hash

log = logging.getLogger("llmflow.online_eval")


@dataclass
class Answer:
    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str = ""


AnswerFn = Callable[[list[dict]], Awaitable[Answer]]


def openai_answer_fn(base_url: str, model: str, max_tokens: int = 128, api_key: str = "EMPTY",
                     timeout_s: float = 60.0) -> AnswerFn:
    import httpx

    client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s,
                               headers={"Authorization": f"Bearer {api_key}"})

    async def answer(messages: list[dict]) -> Answer:
        r = await client.post("/chat/completions", json={"model": model, "messages": messages,
                                                         "max_tokens": max_tokens, "temperature": 0.0})
        r.raise_for_status()
        body = r.json()
        usage = body.get("usage") or {}
        return Answer(body["choices"][0]["message"]["content"] or "", usage.get("prompt_tokens"),
                      usage.get("completion_tokens"), body.get("model", model))
    return answer


class ArmRouter:
    def __init__(self, config: ExperimentConfig, primary: AnswerFn, candidate: AnswerFn | None = None,
                 evaluator: OnlineEvaluator | None = None):
        if config.mode != "off" and candidate is None:
            raise ValueError(f"experiment_arms.mode={config.mode!r} needs a candidate endpoint; set mode: off or "
                             "give the candidate model")
        self.config, self.primary, self.candidate, self.evaluator = config, primary, candidate, evaluator
        self._tasks: set[asyncio.Task] = set()

    def arm_for(self, request_id: str) -> str:
        if self.config.mode == "ab" and unit_hash(request_id, "ab") < self.config.candidate_share:
            return "candidate"
        return "primary"

    def mirrored(self, request_id: str) -> bool:
        return self.config.mode == "shadow" and unit_hash(request_id, "shadow") < self.config.candidate_share

    async def answer(self, request_id: str, messages: list[dict], query: str | None = None, context: str = "",
                     retrieved_ids: list[str] | None = None, prompt_versions: dict[str, str] | None = None) -> dict:
        arm = self.arm_for(request_id)
        fn = self.candidate if arm == "candidate" else self.primary
        start = time.time_ns()
        ans = await fn(messages)
        record = RequestRecord(request_id=request_id, query=query or messages[-1]["content"], response=ans.text,
                               start_time_ns=start, end_time_ns=time.time_ns(), messages=messages,
                               served_messages=messages, context=context,
                               retrieved_ids=retrieved_ids, prompt_tokens=ans.prompt_tokens,
                               completion_tokens=ans.completion_tokens, arm=arm, model=ans.model,
                               prompt_versions=prompt_versions or {})
        if self.mirrored(request_id):
            task = asyncio.create_task(self._shadow(record, messages))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self.evaluator is not None:
            self.evaluator.submit(record)
        return {"request_id": request_id, "arm": arm, "text": ans.text,
                "usage": {"prompt_tokens": ans.prompt_tokens, "completion_tokens": ans.completion_tokens}}

    async def _shadow(self, record: RequestRecord, messages: list[dict]) -> None:
        try:
            shadow = await self.candidate(messages)
        except Exception as e:  # noqa: BLE001 - a failing candidate must not affect users; count it and go on
            log.warning("shadow candidate failed for %s: %s", record.request_id, e)
            if self.evaluator is not None:
                self.evaluator.submit(record)
            return
        if self.evaluator is not None:
            self.evaluator.submit(record, shadow_response=shadow.text)

    async def drain(self) -> None:
        """Wait for in-flight shadow calls (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
