"""The chat page the router serves at its root: one static HTML file with a little JS, no build step.

The page streams answers from the router's own ``/v1/chat/completions``, lists the cited sources
(title + snippet), shows the served model and its registry version, and posts thumbs up/down with
an optional comment to ``/feedback`` with the answer's request id. The router fills in a small JSON
config block: where its routes live (its route prefix), whether the page must ask for the API key,
and the model it serves. The page itself holds no data, so it is served without the key.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PAGE_FILE = Path(__file__).with_name("chat_page.html")


@lru_cache(maxsize=1)
def _template() -> str:
    return PAGE_FILE.read_text()


def render_chat_page(base_path: str, auth_required: bool, model: str, model_version: str | None) -> str:
    """The page for a router mounted at ``base_path`` (``""`` at the host's root, else ``/rag`` …)."""
    config = {"base": base_path.rstrip("/"), "auth_required": auth_required, "model": model,
              "model_version": model_version}
    # "<" escaped: nothing inside the JSON can close the <script> block it sits in.
    return _template().replace("__CONFIG__", json.dumps(config).replace("<", "\\u003c"))
