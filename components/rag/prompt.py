"""The RAG router's grounded prompt (MLflow ``{{var}}`` syntax). ``routing.py`` formats it; eval's
``prompt_templates.TEMPLATES`` registers it with the other prompts, and the router records the
registered version on every trace."""
from __future__ import annotations

RAG = (
    "Answer the question using only the numbered sources below. Cite the sources you use as [1], [2]. "
    "If the sources do not contain the answer, say that you don't know.\n\n"
    "Sources:\n{{context}}\n\nQuestion: {{question}}"
)
