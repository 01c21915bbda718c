"""The RAG router's grounded prompt (MLflow ``{{var}}`` syntax). ``routing.py`` formats it; eval's
``prompt_templates.TEMPLATES`` registers it with the other prompts, and the router records the
registered version on every trace. Defined in ``components.grounded`` so that sft.dataset, which
sits below rag, trains on the same text."""
from __future__ import annotations

from components.grounded import RAG_TEMPLATE as RAG

__all__ = ["RAG"]
