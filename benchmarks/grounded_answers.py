"""Issue 16's grounded-answer goal, on the stack a flow left serving: the RAG router's answers to the
hand-written labelled questions, quote mode (what the e2e recipe serves) vs free generation.

    .venv/bin/python benchmarks/grounded_answers.py WORKDIR [WORKDIR ...]

For each WORKDIR (a finished `llmflow run e2e --workdir WORKDIR`, its stack still serving):
- ours: every labelled question whose documents the index holds, through the served router over HTTP
  (`rag_serve`'s endpoint, its own config: quote mode in the recipe);
- baseline: the same questions through a RouterCore in this process with the same config, index and
  served LLM (over HTTP, the model the gate chose), but `answer_mode: generate` — the same prompts,
  free decoding.
Both greedy (temperature 0). Reported per mode: answers with a span of >= 5 words from a cited
source (the goal: >= 50%, none empty), empty answers, and the share of answers quoting a source
that the question is labelled with (the quote's relevance), against always quoting source [1]'s
first sentence (what a model that picks nothing would serve).
"""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SPAN_WORDS = 5


class HTTPLLM:
    """``serve.router.core.LLMClient`` over the served LLM's OpenAI chat endpoint."""

    def __init__(self, url: str, key: str):
        self.url, self.headers = url, {"Authorization": f"Bearer {key}"}

    async def generate(self, *, messages, model, sampling):
        async with httpx.AsyncClient(timeout=300) as c:
            r = await c.post(f"{self.url}/chat/completions", headers=self.headers,
                             json={"model": model, "messages": messages, **sampling})
        r.raise_for_status()
        body = r.json()
        return {"text": body["choices"][0]["message"]["content"] or "", "finish_reason": "stop",
                "model": body["model"], "prompt_tokens": body["usage"]["prompt_tokens"],
                "completion_tokens": body["usage"]["completion_tokens"]}


def score(rows: list[dict]) -> dict:
    answered = [r for r in rows if r["route"] == "rag"]
    n = len(answered)
    return {"answered": n, "of": len(rows),
            "span_share": sum(r["span"] >= SPAN_WORDS for r in answered) / n,
            "empty": sum(not r["answer"].strip() for r in answered),
            "relevant_quote": sum(r["quoted_relevant"] for r in answered) / n}


def row(q, answer: str, rag: dict, docs: dict[str, str]) -> dict:
    from components.eval.heuristics import longest_shared_span
    from components.grounded import cited_numbers

    cited = rag["sources"]
    quoted = [cited[n - 1]["doc_id"] for n in cited_numbers(answer) if 0 < n <= len(cited)]
    return {"question": q.question, "answer": answer, "route": rag["route"], "mode": rag.get("answer_mode"),
            "cited": [s["doc_id"] for s in cited], "labelled": list(q.doc_ids),
            "span": longest_shared_span(answer, [docs[s["doc_id"]] for s in cited if s["doc_id"] in docs]),
            "quoted_relevant": bool(quoted) and quoted[0] in q.doc_ids,
            "first_relevant": bool(cited) and cited[0]["doc_id"] in q.doc_ids}


def run(workdir: Path) -> dict:
    from components.artifacts import Docs
    from components.rag.embed import shared_embedder
    from components.rag.labelled_questions import labelled_questions_path, load_labelled_questions
    from components.rag.retriever import Retriever, open_index
    from serve.router.config import RouterConfig
    from serve.router.core import RouterCore

    state = json.loads((workdir / ".llmflow" / "state" / "e2e.json").read_text())["steps"]
    rag_ep = json.loads((Path(state["rag_serve"]["uri"]) / "endpoint.json").read_text())
    llm_ep = json.loads((Path(state["serve"]["uri"]) / "endpoint.json").read_text())
    key = Path(rag_ep["api_key_file"]).read_text().strip()
    docs = {r["id"]: r["text"] for r in Docs.read(Path(state["corpus"]["uri"])).rows()}
    index_dir = Path(state["index"]["uri"])
    # The shipped questions are about the 79 pydoc topics the recipe's index holds.
    questions = [q for q in load_labelled_questions(labelled_questions_path("builtin")) if q.doc_ids[0] in docs]
    served = []
    with httpx.Client(timeout=300, headers={"Authorization": f"Bearer {key}"}) as c:
        for q in questions:
            body = c.post(f"{rag_ep['url']}/chat/completions", json={
                "model": "llmflow-rag", "temperature": 0, "max_tokens": 96,
                "messages": [{"role": "user", "content": q.question}]}).raise_for_status().json()
            served.append(row(q, body["choices"][0]["message"]["content"] or "", body["rag"], docs))
    cfg = json.loads((Path(state["rag_serve"]["uri"]) / "_COMPLETE.json").read_text())["config"]["router"]
    cfg.update(index_dir=str(index_dir), answer_mode="generate", online_eval=None, control_path=None,
               model=llm_ep["served_model"], tokenizer=llm_ep["tokenizer"], max_model_len=llm_ep["max_model_len"])
    config = RouterConfig.model_validate(cfg)
    core = RouterCore(config, Retriever(open_index(index_dir, read_only=True), shared_embedder(), config.retrieval),
                      HTTPLLM(llm_ep["url"], key))
    free = []
    for q in questions:
        out = asyncio.run(core.complete({"model": "x", "temperature": 0, "max_tokens": 96,
                                         "messages": [{"role": "user", "content": q.question}]}))
        free.append(row(q, out["choices"][0]["message"]["content"], out["rag"], docs))
    (workdir / "grounded_answers.json").write_text(json.dumps({"quote": served, "generate": free}, indent=2))
    first = [r for r in served if r["route"] == "rag"]
    return {"quote": score(served), "generate": score(free), "served_model": llm_ep["served_model"],
            "first_source_relevant": sum(r["first_relevant"] for r in first) / len(first),
            "examples": [(r["question"], r["answer"], r["cited"]) for r in served[:3]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+", type=Path)
    args = parser.parse_args()
    print("| run | served model | mode | answered | >= 5-word span of a cited source | empty | quote from a "
          "labelled doc | always source [1] |\n|---|---|---|---|---|---|---|---|")
    for w in args.workdirs:
        res = run(w)
        for mode in ("quote", "generate"):
            s = res[mode]
            print(f"| {w} | {res['served_model']} | {mode}{' (served)' if mode == 'quote' else ' (same prompts)'} | "
                  f"{s['answered']}/{s['of']} | {s['span_share']:.2f} | {s['empty']} | {s['relevant_quote']:.2f} | "
                  f"{res['first_source_relevant']:.2f} |")
        for q, a, cited in res["examples"]:
            print(f"    {q!r} -> {a!r} (sources {cited})")


if __name__ == "__main__":
    main()
