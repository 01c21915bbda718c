"""Retrieval evaluation of a ``rag.index`` artifact on two query sets, both limited to what it holds.

The documents come from the index itself (:meth:`QdrantStore.doc_hashes`), never from a config:
a query about a document that is not indexed cannot be asked.

- **Derived queries**: one per sampled indexed document, a sentence of it cut to its first
  ``query_words`` content words (stopwords and one-letter tokens dropped) — the keyword-style
  query of a user who half-remembers a passage. Its label is its document. A document is used
  only if its text in the docs input is the text the index holds (same content hash).
- **Labelled questions**: hand-written questions a user would ask (``labelled_questions.jsonl``
  ships 50 about Python, labelled with stdlib pydoc topics), each labelled with every document
  that answers it: the topic about it and any topic holding that topic's text verbatim (e.g.
  ``topics/with`` and ``topics/compound``). A question is scored if at least one labelled
  document is indexed, against the labelled documents that are.

Retrieval is scored at document level (the chunks of one document collapse to its best rank)
for dense, sparse (BM25 alone) and hybrid (RRF of both) search: recall@k = the share of queries
with a relevant document among the first k documents, MRR = mean 1 / rank of the first
relevant one, nDCG@10 with binary gains over every relevant document (the ideal ranking puts
all of them, at most 10, first). The baseline is a uniformly random ranking of the indexed
documents, in exact expectation (recall and MRR).
"""
from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.rag.labelled_questions import LabelledQuestion
from components.rag.sparse import query_vector, words

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
MODES = ("dense", "sparse", "hybrid")


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    doc_id: str


# -- query sets ------------------------------------------------------------------------------
def derive_queries(docs: Iterable[tuple[str, str]], num_queries: int, query_words: int, seed: int, *,
                   indexed_doc_ids: Collection[str]) -> list[LabelledQuery]:
    """At most one query per document, from ``num_queries`` documents of ``indexed_doc_ids`` sampled
    with ``seed``; documents that are not indexed are never sampled."""
    rng = random.Random(seed)
    candidates = []
    for doc_id, text in docs:
        if doc_id not in indexed_doc_ids:
            continue
        sentences = [s for s in _SENTENCE.split(text) if len(words(s)) >= query_words]
        if sentences:
            candidates.append((doc_id, sentences))
    candidates.sort(key=lambda c: c[0])
    rng.shuffle(candidates)
    queries = []
    for doc_id, sentences in candidates[:num_queries]:
        sentence = rng.choice(sentences)
        queries.append(LabelledQuery(query=" ".join(words(sentence)[:query_words]), doc_id=doc_id))
    return queries


def answerable(questions: list[LabelledQuestion], indexed_doc_ids: Collection[str]) -> list[LabelledQuestion]:
    """The questions with at least one labelled document in the index, labelled with those only."""
    out = []
    for q in questions:
        present = tuple(d for d in q.doc_ids if d in indexed_doc_ids)
        if present:
            out.append(LabelledQuestion(q.question, present, q.line))
    return out


# -- scoring ---------------------------------------------------------------------------------
def doc_rank(ranked_doc_ids: list[str], relevant: str | Collection[str]) -> int | None:
    """1-based rank of the first relevant document among distinct documents in ranking order, or None."""
    relevant = {relevant} if isinstance(relevant, str) else set(relevant)
    seen: set[str] = set()
    for d in ranked_doc_ids:
        if d not in seen:
            seen.add(d)
            if d in relevant:
                return len(seen)
    return None


def doc_ndcg(ranked_doc_ids: list[str], relevant: Collection[str], k: int = 10) -> float:
    """nDCG@k at document level with binary gains: DCG of the relevant documents among the first k
    distinct documents over the DCG of the ideal ranking (min(len(relevant), k) relevant ones first)."""
    distinct = list(dict.fromkeys(ranked_doc_ids))[:k]
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(distinct) if d in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def score_ranks(ranks: list[int | None], ks: list[int]) -> dict[str, float]:
    n = max(len(ranks), 1)
    out = {f"recall_at_{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n
    out["ndcg_at_10"] = sum(1.0 / math.log2(r + 1) for r in ranks if r is not None and r <= 10) / n
    return out


def random_scores(num_docs: int, num_relevant: list[int], ks: list[int]) -> dict[str, float]:
    """Expected recall@k and MRR of a uniformly random ranking of ``num_docs`` documents, for queries
    with ``num_relevant[i]`` relevant documents each (exact, not sampled)."""
    assert num_docs >= 1 and all(1 <= r <= num_docs for r in num_relevant), (num_docs, num_relevant)
    n = max(len(num_relevant), 1)
    out = {}
    for k in ks:
        top = min(k, num_docs)  # P(no relevant doc among the first k) = C(N - r, k) / C(N, k)
        out[f"recall_at_{k}"] = sum(1 - math.comb(num_docs - r, top) / math.comb(num_docs, top)
                                    for r in num_relevant) / n
    # P(the first relevant document is at rank i) = C(N - i, r - 1) / C(N, r)
    out["mrr"] = sum(sum(math.comb(num_docs - i, r - 1) / (i * math.comb(num_docs, r))
                         for i in range(1, num_docs - r + 2)) for r in num_relevant) / n
    return out


def search_doc_ids(store, query: str, vector, mode: str, depth: int, fusion=None) -> list[str]:
    """Doc ids of the first ``depth`` chunks for one query, in ranking order."""
    if mode == "dense":
        hits = store.search_dense(vector, depth)
    elif mode == "sparse":
        sparse = query_vector(query, getattr(store, "sparse_config", None))
        hits = store.search_sparse(sparse, depth) if sparse[0] else []  # no indexable word: nothing matches
    elif mode == "hybrid":
        hits = store.search_hybrid(vector, query_vector(query, getattr(store, "sparse_config", None)), depth, depth,
                                   fusion=fusion)
    else:
        raise AssertionError(f"unknown mode {mode!r}")
    return [str(h.payload.get("doc_id", "")) for h in hits]


def score_queries(store, embedder, queries: list[tuple[str, Collection[str]]], ks: list[int], depth: int,
                  progress: Callable | None = None, desc: str = "", fusion=None) -> dict[str, Any]:
    """Search every (query, relevant doc ids) three ways; per-mode scores, search latency and per-query ranks."""
    vectors = embedder.embed([q for q, _ in queries])
    ranks: dict[str, list[int | None]] = {m: [] for m in MODES}
    ndcgs: dict[str, list[float]] = {m: [] for m in MODES}
    latency_ms: dict[str, list[float]] = {m: [] for m in MODES}
    rows = []
    items = zip(queries, vectors)
    if progress is not None:
        items = progress(items, total=len(queries), desc=desc)
    for (query, relevant), vec in items:
        row = {"query": query, "doc_ids": sorted(relevant)}
        for mode in MODES:
            t0 = time.perf_counter()
            ranked = search_doc_ids(store, query, vec, mode, depth, fusion)
            latency_ms[mode].append((time.perf_counter() - t0) * 1e3)
            ranks[mode].append(doc_rank(ranked, relevant))
            ndcgs[mode].append(doc_ndcg(ranked, set(relevant)))
            row[f"{mode}_rank"] = ranks[mode][-1]
            row[f"{mode}_top_doc"] = ranked[0] if ranked else None
        rows.append(row)
    out: dict[str, Any] = {}
    for mode in MODES:
        out[mode] = {**score_ranks(ranks[mode], ks),
                     # every relevant document counts (several per labelled question); one relevant = as above
                     "ndcg_at_10": sum(ndcgs[mode]) / max(len(ndcgs[mode]), 1),
                     "search_ms_p50": sorted(latency_ms[mode])[len(latency_ms[mode]) // 2]}
    out["queries"] = rows
    return out


# -- the whole evaluation --------------------------------------------------------------------
def evaluate_index(store, embedder, docs: Iterable[Mapping[str, str]], *, num_queries: int, query_words: int,
                   seed: int, ks: list[int], depth: int, questions: list[LabelledQuestion] | None = None,
                   questions_source: str = "", progress: Callable | None = None, fusion=None) -> dict[str, Any]:
    """The report of ``rag.evaluate``: derived queries (top level) and ``labelled`` questions.

    ``docs`` are records with ``id``, ``title``, ``source``, ``text`` (the docs input); ``store``
    is an open :class:`components.rag.qdrant_store.QdrantStore` holding the index; ``fusion`` is
    the hybrid mode's :class:`components.rag.config.FusionConfig` (None = its defaults).
    """
    from components.rag.indexing import doc_hash

    ks = sorted({1, 5, *ks})  # the headline and its run-summary neighbours read recall@1 and @5
    indexed = store.doc_hashes()
    if not indexed:
        raise ValueError("the index holds no document; run rag.index on a docs input with text in it")
    docs = list(docs)
    current = {d["id"]: d["text"] for d in docs
               if indexed.get(d["id"]) == doc_hash(d["id"], d["title"], d["source"], d["text"])}
    queries = derive_queries(current.items(), num_queries, query_words, seed, indexed_doc_ids=current)
    if not queries:
        if not current:
            raise ValueError(f"none of the {len(indexed)} indexed documents is in the docs input with the text "
                             "the index holds; give rag.evaluate the docs artifact rag.index indexed")
        raise ValueError(f"no query could be derived: no indexed document has a sentence of {query_words} "
                         "content words; lower query_words")
    assert all(q.doc_id in indexed for q in queries)

    report: dict[str, Any] = {
        "num_indexed_docs": len(indexed), "num_indexed_chunks": store.count(),
        "num_input_docs": len(docs), "num_indexed_docs_matching_input": len(current),
        "num_queries": len(queries), "ks": ks, "depth_chunks": depth,
        "fusion": fusion.model_dump() if fusion is not None else None}
    derived = score_queries(store, embedder, [(q.query, {q.doc_id}) for q in queries], ks, depth,
                            progress, "rag.evaluate: derived queries", fusion)
    report.update({m: derived[m] for m in MODES})
    report["random"] = random_scores(len(indexed), [1] * len(queries), ks)
    report["hybrid_minus_dense_ndcg_at_10"] = report["hybrid"]["ndcg_at_10"] - report["dense"]["ndcg_at_10"]
    report["queries"] = derived["queries"]
    if questions is not None:
        report["labelled"] = _labelled(store, embedder, questions, questions_source, indexed, ks, depth, progress,
                                       fusion)
    return report


def _labelled(store, embedder, questions, source, indexed, ks, depth, progress, fusion) -> dict[str, Any]:
    usable = answerable(questions, indexed)
    if not usable:
        needed = sorted({d for q in questions for d in q.doc_ids})
        raise ValueError(
            f"none of the {len(questions)} labelled questions ({source}) has a labelled document in the index "
            f"({len(indexed)} docs, e.g. {sorted(indexed)[:3]}); they need e.g. {needed[:5]}. Index the documents "
            "they need (raise rag.index max_docs, or add them to its docs input), point rag.evaluate's "
            "labelled_questions at questions about your corpus, or set labelled_questions: null to skip them")
    scored = score_queries(store, embedder, [(q.question, set(q.doc_ids)) for q in usable], ks, depth,
                           progress, "rag.evaluate: labelled questions", fusion)
    labelled, used = {q.line: q for q in questions}, {u.line for u in usable}
    out: dict[str, Any] = {
        "source": source, "num_questions_total": len(questions), "num_questions": len(usable),
        # scored against the indexed part of their labels only
        "num_partly_indexed": sum(len(u.doc_ids) < len(labelled[u.line].doc_ids) for u in usable),
        "skipped": [{"line": q.line, "question": q.question, "doc_ids": list(q.doc_ids)}
                    for q in questions if q.line not in used]}
    for mode in MODES:
        out[mode] = scored[mode]
    out["random"] = random_scores(len(indexed), [len(q.doc_ids) for q in usable], ks)
    out["questions"] = scored["queries"]
    return out


def headline_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The step's returned metrics: hybrid recall@1 on derived queries first (the run summary shows
    it), then its baselines (random pick, BM25 alone), the labelled set's, then everything per mode."""
    m: dict[str, float] = {
        "hybrid_recall_at_1": report["hybrid"]["recall_at_1"],
        "random_recall_at_1": report["random"]["recall_at_1"],
        "sparse_recall_at_1": report["sparse"]["recall_at_1"],
        "dense_recall_at_1": report["dense"]["recall_at_1"],
    }
    lab = report.get("labelled")
    if lab is not None:
        m.update({
            "labelled_hybrid_recall_at_1": lab["hybrid"]["recall_at_1"],
            "labelled_hybrid_recall_at_5": lab["hybrid"]["recall_at_5"],
            "labelled_mrr": lab["hybrid"]["mrr"],  # hybrid, the mode the router serves
            "labelled_num_questions": lab["num_questions"],
            "labelled_random_recall_at_1": lab["random"]["recall_at_1"],
            "labelled_sparse_recall_at_1": lab["sparse"]["recall_at_1"],
            "labelled_dense_recall_at_1": lab["dense"]["recall_at_1"],
        })
    m.update({"num_indexed_docs": report["num_indexed_docs"], "num_queries": report["num_queries"]})
    for mode in MODES:
        m.update({f"{mode}_{k}": v for k, v in report[mode].items()})
        if lab is not None:
            m.update({f"labelled_{mode}_{k}": v for k, v in lab[mode].items()})
    m.update({f"random_{k}": v for k, v in report["random"].items()})
    if lab is not None:
        m.update({f"labelled_random_{k}": v for k, v in lab["random"].items()})
    return m
