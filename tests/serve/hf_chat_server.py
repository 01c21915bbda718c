"""A minimal OpenAI-compatible chat server over an HF model, with the online loop optional.

Used as a real judge endpoint in tests and as the HTTP app of the overhead benchmark; it
is not the production server (that is ``serve/llm/deployment.py`` on vLLM). It supports vLLM's
``structured_outputs: {"choice": [...]}`` by scoring each choice's log-likelihood, so a
judge gets a valid label from even a tiny model.

    python -m tests.serve.hf_chat_server MODEL_DIR --port 18200
"""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict

from serve.online_eval.evaluator import OnlineEvaluator, RequestRecord


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = "local"
    messages: list[dict]
    max_tokens: int = 32
    temperature: float = 0.0
    structured_outputs: dict | None = None


class HFChatModel:
    def __init__(self, model_dir: str | Path):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(1)  # one request at a time on a shared 2-core box
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.lock = threading.Lock()

    def _prompt_ids(self, messages: list[dict]):
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def chat(self, messages: list[dict], max_tokens: int, choices: list[str] | None) -> tuple[str, int, int]:
        import torch

        ids = self._prompt_ids(messages)
        with self.lock, torch.no_grad():
            if choices:
                return self._best_choice(ids, choices), ids.shape[1], 1
            out = self.model.generate(ids, max_new_tokens=max_tokens, do_sample=False,
                                      pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
        new = out[0, ids.shape[1]:]
        return self.tok.decode(new, skip_special_tokens=True), ids.shape[1], int(new.shape[0])

    def _best_choice(self, ids, choices: list[str]) -> str:
        import torch

        scores = []
        for c in choices:
            cids = self.tok(c, return_tensors="pt", add_special_tokens=False)["input_ids"]
            full = torch.cat([ids, cids], dim=1)
            logp = self.model(full).logits[0, ids.shape[1] - 1:-1].log_softmax(-1)
            scores.append(float(logp.gather(1, cids[0][:, None]).sum()))
        return choices[max(range(len(choices)), key=scores.__getitem__)]


def build_app(model_dir: str | Path, evaluator: OnlineEvaluator | None = None):
    llm = HFChatModel(model_dir)
    app = FastAPI(title="llmflow hf chat")

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest, response: Response) -> dict[str, Any]:
        start = time.time_ns()
        choices = (req.structured_outputs or {}).get("choice")
        text, n_prompt, n_completion = llm.chat(req.messages, req.max_tokens, choices)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        if evaluator is not None:
            evaluator.submit(RequestRecord(
                request_id=request_id, query=req.messages[-1]["content"], response=text, start_time_ns=start,
                end_time_ns=time.time_ns(), messages=req.messages, prompt_tokens=n_prompt,
                completion_tokens=n_completion, model=req.model))
        response.headers["x-request-id"] = request_id
        return {"id": request_id, "object": "chat.completion", "created": int(time.time()), "model": req.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_completion,
                          "total_tokens": n_prompt + n_completion}}

    if evaluator is not None:
        from serve.online_eval.app import feedback_routes

        app.include_router(feedback_routes(evaluator))
    return app


class BackgroundServer:
    """uvicorn in a thread on loopback; ``with BackgroundServer(app, port) as url: ...``."""

    def __init__(self, app, port: int, host: str = "127.0.0.1"):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", workers=1))
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                time.sleep(0.1)
        raise TimeoutError(f"server on {self.url} did not answer /health within 30 s")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


if __name__ == "__main__":
    import argparse

    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--port", type=int, default=18200)
    args = ap.parse_args()
    uvicorn.run(build_app(args.model_dir), host="127.0.0.1", port=args.port)
