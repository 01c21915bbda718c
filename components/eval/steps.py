"""``eval.offline``: score a model (optionally + adapter) and gate it against the champion.

With the optional ``index`` input (a rag.index artifact) each question is also answered from
retrieved sources and scored for groundedness (components/eval/rag_eval.py).

Writes into the artifact:
  report.json     all metrics, judge status, prompt versions, inputs
  results.jsonl   one row per question: question, reference, prediction, EM/F1, judge scores, verdict
  results.md      the metrics as a table (also logged to MLflow)
  gate.json       promote or not, with the reason, candidate and champion versions/metrics
"""
from __future__ import annotations

import json
import random
from collections.abc import Collection
from pathlib import Path

from components.artifacts import Adapter, Model, Tokens
from components.eval.config import FeedbackPrefsConfig, OfflineEvalConfig
from components.eval.prompt_templates import TEMPLATES
from components.eval.text_metrics import exact_match, qa_metrics, token_f1
from flows.engine.registry import step_kind


def load_eval_rows(data_artifact: Path, max_rows: int, seed: int,
                   source_ids: Collection[str] | None = None) -> list[dict]:
    """Up to ``max_rows`` shuffled eval.jsonl rows; with ``source_ids``, only rows about those documents."""
    path = data_artifact / "eval.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: wire eval.offline's `data` input to an sft.dataset step")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, r in enumerate(rows):
        if not {"question", "answer"} <= set(r):
            raise ValueError(f"{path}:{i + 1} needs question and answer fields, has {sorted(r)}")
    if not rows:
        raise ValueError(f"{path} is empty: sft.dataset produced no eval rows")
    if source_ids is not None:
        rows = [r for r in rows if r.get("source_id") in source_ids]
        if not rows:
            raise ValueError(f"no row of {path} is about a document the index holds ({len(source_ids)} indexed): "
                             "index the documents sft.dataset asks about, or set rag.indexed_only: false")
    random.Random(seed).shuffle(rows)
    return rows[:max_rows]


def sync_prompts(tracking_uri: str) -> dict:
    from components.tracking.prompts import sync_prompt

    return {name: sync_prompt(tracking_uri, name, template) for name, template in TEMPLATES.items()}


def judge_rows(config: OfflineEvalConfig, judge, rows: list[dict], preds: list[str]):
    """Rubric + pairwise (prediction vs reference, both orders) → (summary, per-row results)."""
    from components.eval.judge import pairwise_summary, rubric_summary

    rubric = judge.rubric_many([{"question": r["question"], "answer": p, "reference": r["answer"]}
                                for r, p in zip(rows, preds)])
    summary = rubric_summary(rubric)
    pairwise = []
    if config.pairwise_against == "reference":
        pairwise = judge.pairwise_many([(r["question"], p, r["answer"]) for r, p in zip(rows, preds)])
        summary.update(pairwise_summary(pairwise))
    return summary, rubric, pairwise


def answer_all(ctx, model, tok, device, prompts: list[str], system: str, config: OfflineEvalConfig,
               max_prompt_tokens: int | None, desc: str) -> list[str]:
    from components.eval.model_eval import generate_answers

    out: list[str] = []
    for i in ctx.progress(range(0, len(prompts), config.batch_size), desc=desc):
        out += generate_answers(model, tok, device, prompts[i:i + config.batch_size], system, config.max_new_tokens,
                                config.batch_size, config.use_chat_template, max_prompt_tokens)
    return out


@step_kind("eval.offline", inputs=("model", "data", "adapter?", "tokens?", "index?"),
           description="perplexity, EM/F1, BLEU/ROUGE, LLM-as-judge (rubric + both-order pairwise), RAG "
                       "groundedness with an index, mlflow.genai.evaluate scorers, "
                       "then the champion/candidate gate on MLflow registry aliases → report.json, gate.json")
def run_offline_eval(ctx, config: OfflineEvalConfig, judge_backend=None) -> dict[str, float]:
    from components.eval.gate import run_gate
    from components.eval.judge import build_judge
    from components.eval.model_eval import load_model, perplexity, prompt_budget, val_blocks
    from components.eval.rag_eval import context_of, grounded_prompts, retrieve_all, score_rag
    from components.tracking.mlflow_tracking import default_tracking_uri

    # Every input is checked before anything slow starts.
    model_dir = Model.of(ctx).dir
    adapter = ctx.inputs.get("adapter")
    adapter_dir = Adapter.of(ctx).dir if adapter is not None else None
    tokens = ctx.inputs.get("tokens")
    if tokens is not None:
        Tokens.of(ctx)
    index = ctx.inputs.get("index")
    indexed = None
    if index is not None and config.rag.indexed_only:
        from components.rag.retriever import open_index

        with open_index(index) as store:
            indexed = set(store.doc_hashes())
    rows = load_eval_rows(ctx.input("data"), config.max_questions, config.seed, indexed)
    tracking_uri = ctx.tracking_uri or default_tracking_uri()
    prompts = sync_prompts(tracking_uri)
    prompt_versions = {name: ref.uri for name, ref in prompts.items()}

    model, tok, device = load_model(model_dir, adapter_dir)
    metrics: dict[str, float] = {}
    if tokens is not None:
        metrics.update(perplexity(model, val_blocks(tokens, config.max_ppl_blocks), device, config.batch_size))
    system = prompts["llmflow-system"].template
    budget = prompt_budget(model, config.max_new_tokens)
    questions = [r["question"] for r in rows]
    rag_sources = retrieve_all(index, questions, config.rag) if index is not None else None

    def answers(desc: str) -> tuple[list[str], list[str] | None]:
        plain = answer_all(ctx, model, tok, device, questions, system, config, budget, desc)
        if rag_sources is None:
            return plain, None
        grounded = grounded_prompts(questions, rag_sources, config.rag.max_source_chars)
        max_prompt = config.rag.max_prompt_tokens or budget
        if config.rag.answer_mode == "quote":
            from components.eval.model_eval import choose_answers
            from components.grounded import quote_choices

            choices = [quote_choices(s, config.rag.max_source_chars) for s in rag_sources]
            return plain, choose_answers(model, tok, device, grounded, choices, system, config.max_new_tokens,
                                         config.use_chat_template, max_prompt)
        return plain, answer_all(ctx, model, tok, device, grounded, system, config, max_prompt,
                                 f"{desc} from sources")

    preds, rag_preds = answers("answering")
    base_metrics: dict[str, float] | None = None
    if adapter is not None:
        # The same questions, sources and decoding through the base model (adapter switched off):
        # what the adapter changed is the candidate's effect, and the first model's gate baseline.
        with model.disable_adapter():
            base_preds, base_rag_preds = answers("base model answering")
        base_metrics = qa_metrics(base_preds, [r["answer"] for r in rows])
        if rag_sources is not None:
            base_metrics.update(score_rag(rows, base_rag_preds, rag_sources, config.rag.max_source_chars)[0])
    model = None  # free the weights before the judge runs (`del` would leave answers() a dangling name)
    metrics.update(qa_metrics(preds, [r["answer"] for r in rows]))

    rubric, pairwise = [], []
    judge = build_judge(config.judge, prompts, judge_backend) if config.judge.enabled else None
    if judge is not None:
        summary, rubric, pairwise = judge_rows(config, judge, rows, preds)
        metrics.update(summary)
        judge_status = {"status": "ran", "base_url": config.judge.base_url, "model": config.judge.model}
    else:
        judge_status = {"status": "skipped", "reason": "judge.base_url is not set; no judge scores were produced"}
    rag_rows: list[dict] = []
    if rag_sources is not None:
        rag_metrics, rag_rows = score_rag(rows, rag_preds, rag_sources, config.rag.max_source_chars, judge)
        metrics.update(rag_metrics)
    ctx.set_tags({"eval.judge": judge_status["status"], **{f"prompt.{k}": v for k, v in prompt_versions.items()}})
    ctx.log_metrics(metrics)
    primary = config.gate.metric
    if base_metrics is not None:
        ctx.log_metrics({f"base_{k}": v for k, v in base_metrics.items()})
        if primary in metrics and primary in base_metrics:
            ctx.report_effect(primary, metrics[primary], base_metrics[primary],
                              higher_is_better=config.gate.higher_is_better, baseline_name="base model")

    out = ctx.output
    table_rows = []
    with open(out / "results.jsonl", "w") as f:
        for i, (r, p) in enumerate(zip(rows, preds)):
            row = {"question": r["question"], "reference": r["answer"], "prediction": p,
                   "source_id": r.get("source_id"), "exact_match": exact_match(p, r["answer"]),
                   "f1": token_f1(p, r["answer"])}
            if rubric:
                row.update(judge_scores=rubric[i].scores, judge_raw=rubric[i].raw[:500])
            if pairwise:
                row.update(pairwise_vs_reference=pairwise[i].verdict, pairwise_orders=[pairwise[i].first, pairwise[i].second])
            if rag_rows:
                row.update(rag_rows[i])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            table_rows.append(row)
    genai_status = "skipped: the step has no MLflow run"
    if ctx.run_id is not None:
        from components.tracking.traces import log_table

        log_table(tracking_uri, ctx.run_id, table_rows, "eval_results.json")
        if config.mlflow_genai:
            from components.tracking.genai_eval import genai_evaluate

            genai_rows = [{"question": r["question"], "prediction": p, "reference": r["answer"]}
                          for r, p in zip(rows, preds)]
            if rag_sources is not None:
                for g, rr, s in zip(genai_rows, rag_rows, rag_sources):
                    g.update(rag_answer=rr["rag_prediction"], rag_context=context_of(s, config.rag.max_source_chars))
            genai_metrics = genai_evaluate(tracking_uri, ctx.run_id, genai_rows, f"{ctx.name}/mlflow-genai")
            genai_status = f"ran: {', '.join(f'{k}={v:.4f}' for k, v in sorted(genai_metrics.items()))}"
    if not config.mlflow_genai:
        genai_status = "skipped: mlflow_genai is false"
    ctx.set_tags({"eval.mlflow_genai": genai_status[:250]})
    table = "| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v:.4f} |\n" for k, v in metrics.items())
    (out / "results.md").write_text(table + f"\njudge: {judge_status['status']}\n")
    report = {"metrics": metrics, "base_metrics": base_metrics, "num_questions": len(rows), "judge": judge_status,
              "mlflow_genai": genai_status,
              "rag": {"index": str(index), **config.rag.model_dump()} if index is not None else None,
              "prompt_versions": prompt_versions, "adapter": adapter is not None, "tokens": tokens is not None}
    (out / "report.json").write_text(json.dumps(report, indent=2))

    if config.gate.enabled:
        # The registry records where the candidate lives in the artifact store (s3://... on a cluster):
        # an MLflow server refuses a local path, and this node's cached copy is nowhere else.
        source = ctx.input_uri("adapter" if adapter is not None else "model")
        gate = run_gate(tracking_uri, config.gate, metrics, source, run_id=ctx.run_id,
                        tags={"llmflow.address": ctx.address, "base_model": ctx.input_uri("model"),
                              "eval.judge": judge_status["status"]}, base=base_metrics)
    else:
        gate = {"promoted": False, "gated": False, "reason": "gate.enabled is false: report only"}
    (out / "gate.json").write_text(json.dumps(gate, indent=2))
    ctx.set_tags({"gate.promoted": gate["promoted"], "gate.reason": gate["reason"][:500]})
    for name in ("report.json", "results.md", "gate.json"):
        ctx.log_artifact(out / name)
    head = {primary: metrics[primary]} if primary in metrics else {}
    return {**head, **metrics, "promoted": float(gate["promoted"])}


@step_kind("eval.feedback_prefs",
           description="online feedback + judged shadow pairs → preferences.jsonl (prompt/chosen/rejected + "
                       "provenance) and failures.jsonl: the `prefs` input of rl.dpo",
           cacheable=False)  # reads a log that keeps growing
def run_feedback_prefs(ctx, config: FeedbackPrefsConfig) -> dict[str, float]:
    """Feedback (thumbs) + judge verdicts from the online loop → preferences.jsonl / failures.jsonl."""
    from components.eval.preferences import (
        FeedbackRecord,
        JudgedPair,
        export_preferences,
    )

    fb_path = Path(config.feedback_path)
    if not fb_path.exists():
        raise FileNotFoundError(f"feedback_path={fb_path} does not exist: point it at the serving app's "
                                "OnlineEvalConfig.feedback_path")
    pairs_path = Path(config.judged_pairs_path) if config.judged_pairs_path else \
        fb_path.with_name(fb_path.stem + "_judged_pairs.jsonl")
    feedback = [FeedbackRecord(**json.loads(x)) for x in fb_path.read_text().splitlines() if x.strip()]
    judged = [JudgedPair(**json.loads(x)) for x in pairs_path.read_text().splitlines() if x.strip()] \
        if pairs_path.exists() else []
    report = export_preferences(feedback, ctx.output, judged)
    if report["num_pairs"] < config.min_pairs:
        raise ValueError(f"only {report['num_pairs']} preference pairs from {report['num_feedback']} feedback records "
                         f"(min_pairs={config.min_pairs}): collect more thumbs up/down on the same prompts")
    ctx.log_metrics({k: float(v) for k, v in report.items()})
    return {k: float(v) for k, v in report.items()}
