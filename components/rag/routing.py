"""Routing a chat request: grounded answer from sources, plain generation, or an honest refusal.

Pure functions (no I/O) so every path is unit-testable; the Serve router calls them. The grounded
prompt itself is ``components.grounded.grounded_prompt`` (re-exported here): sft.dataset trains on it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from components.grounded import grounded_prompt
from components.rag.retriever import Source

Route = Literal["rag", "generate", "refuse"]

def choose_route(sources: Sequence[Source], threshold: float, fallback: Literal["generate", "refuse"]) -> Route:
    """``rag`` when the best source's relevance clears the threshold, else the fallback policy."""
    if sources and max(s.relevance for s in sources) >= threshold:
        return "rag"
    return fallback


def cited_sources(sources: Sequence[Source], threshold: float, min_sources: int = 1) -> list[Source]:
    """The sources put in the prompt: those at or above the threshold (at least ``min_sources``)."""
    above = [s for s in sources if s.relevance >= threshold]
    return above if len(above) >= min_sources else list(sources[:min_sources])


def query_of(messages: list[dict]) -> str:
    """The text of the last user message (string content or OpenAI content parts)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            return content if isinstance(content, str) else ""
    return ""


def grounded_messages(messages: list[dict], sources: Sequence[Source], max_source_chars: int) -> list[dict]:
    """The conversation with its last user turn replaced by the grounded prompt."""
    last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
    out = [dict(m) for m in messages]
    out[last_user] = {"role": "user", "content": grounded_prompt(query_of(messages), sources, max_source_chars)}
    return out
