"""The e2e stack's RAG router answers everyday questions: with the flow's own model (512-token
context) and index, 34 varied Python questions — most of whose top sources together overflow the
context — each come back 200 on the grounded route with cited sources.

Before the router budgeted prompts, 4 of 5 such questions got vLLM's 400 ("maximum context length
is 512 tokens"). The questions are not the smoke step's. ``e2e_stack`` (tests/flows/conftest.py)
is the stack ``llmflow run e2e`` leaves running.
"""
from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# About the first 20 pydoc topics (assert ... class), the documents even the smallest e2e index
# (steps.index.config.max_docs=20) holds: each clears the relevance threshold there with margin
# (best dense cosine 0.49-0.77 measured on those topics' chunks), and the top-5 sources of most
# of them, even cut to the stack's 300 characters each, exceed the 512-token context.
QUESTIONS = [
    "When are assert statements removed from my program?",
    "What exception does a failing assert raise?",
    "How does assignment to a variable work in Python?",
    "Can I assign to a slice of a list?",
    "How does x += 1 work?",
    "How do I write an async for loop?",
    "What does async with do?",
    "How do I define a coroutine function with async def?",
    "What does the await expression do?",
    "What is private name mangling for names starting with two underscores?",
    "What kinds of literals does Python have?",
    "How do I customize attribute access with __getattr__?",
    "What is the difference between __getattr__ and __getattribute__?",
    "How do descriptors work?",
    "What does __slots__ do?",
    "What happens when I access an attribute that does not exist?",
    "What is integer division?",
    "How do I multiply two numbers?",
    "How does the modulo operator % work with negative numbers?",
    "What does the @ operator do?",
    "How do bitwise and, or and xor work on integers?",
    "What is a code object?",
    "What is the Ellipsis object?",
    "What is None in Python?",
    "How do I get the type of an object?",
    "Which values count as false in a boolean context?",
    "How do I exit a loop early with break?",
    "What happens to the else clause of a loop after break?",
    "What kinds of objects can be called?",
    "How do I call a method on an object?",
    "How do I pass keyword arguments to a function?",
    "What does **kwargs do in a function call?",
    "How do I unpack a list into function arguments with *?",
    "How do I create a class that inherits from a base class?",
    "What does a class definition execute?",
    "How do I write a class decorator?",
]
# None = the router's default; a large max_tokens leaves the least room for sources.
MAX_TOKENS = [None, 32, 200]


def test_every_everyday_question_gets_a_grounded_answer_with_sources(e2e_stack):
    assert len(set(QUESTIONS)) >= 30
    headers = {"Authorization": f"Bearer {e2e_stack['api_key']}"}
    failures, cut = [], 0
    with httpx.Client(base_url=e2e_stack["rag_url"], headers=headers, timeout=180) as client:
        for i, question in enumerate(QUESTIONS):
            body = {"model": "llmflow-rag", "temperature": 0, "messages": [{"role": "user", "content": question}]}
            if MAX_TOKENS[i % len(MAX_TOKENS)] is not None:
                body["max_tokens"] = MAX_TOKENS[i % len(MAX_TOKENS)]
            r = client.post("/chat/completions", json=body)
            if r.status_code != 200:
                failures.append(f"{question!r}: HTTP {r.status_code} {r.text[:300]}")
                continue
            out = r.json()
            rag, budget = out["rag"], out["rag"].get("budget") or {}
            if rag["route"] != "rag" or not rag["sources"]:
                failures.append(f"{question!r}: route {rag['route']} with {len(rag['sources'])} sources "
                                f"(best retrieved {rag['retrieved'][:1]})")
                continue
            if not budget:
                failures.append(f"{question!r}: no rag.budget — the router is not budgeting prompts")
                continue
            # the router counted exactly what vLLM counted, and left room for the answer
            if out["usage"]["prompt_tokens"] != budget["prompt_tokens"] or \
                    budget["prompt_tokens"] + budget["max_tokens"] > budget["max_model_len"]:
                failures.append(f"{question!r}: usage {out['usage']} vs budget {budget}")
            cut += bool(budget["dropped"] or budget["trimmed"])
    assert not failures, f"{len(failures)}/{len(QUESTIONS)} questions failed:\n" + "\n".join(failures)
    # the point of the test: most of these questions' sources overflow the context uncut
    assert cut >= len(QUESTIONS) // 2, f"only {cut} questions needed sources cut; they no longer test the budget"
