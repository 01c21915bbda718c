"""Prompt templates as code (MLflow ``{{var}}`` syntax). ``components.tracking.prompts.sync_prompt``
mirrors each into MLflow's prompt registry; traces and eval reports record the version used."""
from __future__ import annotations

# The RAG prompt lives with the stage that formats it (eval sits above rag, not below).
from components.rag.prompt import RAG

SYSTEM = "You are llmflow's assistant. Answer questions about Python accurately and concisely."


RUBRIC_CRITERIA = ("relevance", "accuracy", "completeness", "clarity")

JUDGE_RUBRIC = (
    "You are grading an assistant's answer. Score each criterion from 1 (poor) to 5 (excellent):\n"
    "relevance: does it address the question? accuracy: is it correct (use the reference if given)? "
    "completeness: does it cover what the question asks? clarity: is it easy to read?\n\n"
    "Question: {{question}}\nReference answer: {{reference}}\nContext: {{context}}\nAnswer: {{answer}}\n\n"
    'Reply with JSON only, e.g. {"relevance": 4, "accuracy": 3, "completeness": 4, "clarity": 5}.'
)

# Used when the judge endpoint constrains decoding to a choice: one call per criterion.
JUDGE_CRITERION = (
    "You are grading an assistant's answer on {{criterion}} from 1 (poor) to 5 (excellent).\n\n"
    "Question: {{question}}\nReference answer: {{reference}}\nContext: {{context}}\nAnswer: {{answer}}\n\n"
    "{{criterion}} score (1-5):"
)

JUDGE_PAIRWISE = (
    "Two assistants answered the same question. Which answer is better overall "
    "(relevant, accurate, complete, clear)?\n\nQuestion: {{question}}\n\n"
    "Answer A: {{answer_a}}\n\nAnswer B: {{answer_b}}\n\n"
    "Reply with exactly one letter: A, B, or T for a tie."
)

# Offline RAG groundedness: is every claim of the answer supported by the sources it was given?
JUDGE_GROUNDEDNESS = (
    "You are checking whether an answer is supported by its sources. Score from 1 (claims not in the "
    "sources, or contradicting them) to 5 (every claim is stated in the sources).\n\n"
    "Sources:\n{{context}}\n\nQuestion: {{question}}\nAnswer: {{answer}}\n\n"
    "Groundedness score (1-5):"
)

TEMPLATES: dict[str, str] = {
    "llmflow-system": SYSTEM,
    "llmflow-rag": RAG,
    "llmflow-judge-rubric": JUDGE_RUBRIC,
    "llmflow-judge-criterion": JUDGE_CRITERION,
    "llmflow-judge-pairwise": JUDGE_PAIRWISE,
    "llmflow-judge-groundedness": JUDGE_GROUNDEDNESS,
}
