"""Step kinds of the evaluation stage (light: no heavy imports)."""
from flows.engine.registry import StepKind

KINDS = [
    StepKind(
        name="eval.offline",
        config="components.eval.config:OfflineEvalConfig",
        run="components.eval.steps:run_offline_eval",
        inputs=("model", "data", "adapter?", "tokens?", "index?"),
        description="perplexity, EM/F1, BLEU/ROUGE, LLM-as-judge (rubric + both-order pairwise), RAG "
                    "groundedness with an index, mlflow.genai.evaluate scorers, "
                    "then the champion/candidate gate on MLflow registry aliases → report.json, gate.json",
    ),
    StepKind(
        name="eval.feedback_prefs",
        config="components.eval.config:FeedbackPrefsConfig",
        run="components.eval.steps:run_feedback_prefs",
        inputs=(),
        description="online feedback + judged shadow pairs → preferences.jsonl (prompt/chosen/rejected + provenance) and "
                    "failures.jsonl: the `prefs` input of rl.dpo",
        cacheable=False,  # reads a log that keeps growing
    ),
]
