"""Configs of the RAG steps (``rag.index``, ``rag.evaluate``) and of retrieval at query time."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, computed_field, field_validator, model_validator

from components.config import Config
from components.rag.labelled_questions import (
    BUILTIN,
    labelled_questions_path,
    load_labelled_questions,
)


class ChunkingConfig(Config):
    """How a document is cut into chunks of embedding-model tokens."""

    chunk_tokens: int = Field(128, ge=16, le=512, description=(
        "Target chunk length in embedding-model tokens; all-MiniLM-L6-v2 reads at most 256 "
        "(it truncates the rest), so stay at or below 254."))
    overlap_tokens: int = Field(24, ge=0, description="Tokens shared by consecutive chunks of one document.")
    min_chunk_tokens: int = Field(8, ge=1, description="A trailing chunk shorter than this is merged into the previous one.")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens "
                             f"({self.chunk_tokens}); lower overlap_tokens, e.g. to chunk_tokens // 5")
        return self


class SparseConfig(Config):
    """BM25 sparse vectors: the document side stores saturated term frequencies, Qdrant multiplies
    each query term by its IDF over the live collection at query time (``Modifier.IDF``)."""

    encoder: Literal["qdrant_bm25", "hashed"] = Field("qdrant_bm25", description=(
        "Who turns text into sparse vectors. 'qdrant_bm25': Qdrant's own BM25 (qdrant-edge's Bm25: "
        "English stopwords and Snowball stemming, the same indices as a Qdrant server's qdrant/bm25). "
        "'hashed': llmflow's older tokenizer (lowercase words, no stemming, blake2b term ids)."))
    k1: float = Field(1.2, gt=0, description="BM25 term-frequency saturation.")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation (0 = none, 1 = full).")
    avg_doc_tokens: float = Field(256.0, gt=0, description=(
        "Assumed average chunk length in tokens for length normalisation; fixed (not measured) "
        "so that a chunk's vector does not change when other documents are added. 256 is Qdrant's "
        "Bm25 default; on the labelled questions it ranked as well as or better than 100 (benchmarks/rag_fusion.py)."))


class HnswConfig(Config):
    """Qdrant's HNSW index of the dense vectors (Edge and server alike). ``ef`` 512 is the smallest
    value of benchmarks/rag_search.py's sweep that meets both goals: recall@10 0.9960 / p50 1.44 ms on
    100k real MiniLM chunks, 0.955 / 3.19 ms on 1M synthetic vectors, where ef 128 fell to 0.829.
    ``m`` 16 / ``ef_construct`` 100 (Qdrant's defaults) were swept against 32 / 200 on 10k and 25.4k
    real MiniLM chunks: the defaults give recall@10 0.9955-0.997 at ef 128 (goal 0.98), 32 / 200 adds
    0.002-0.0035 for a 1.4-4x longer build, so they stay (benchmarks/RESULTS.md, issue 19)."""

    m: int = Field(16, ge=4, le=128, description="Edges per node of the graph; more = better recall, more memory.")
    ef_construct: int = Field(100, ge=8, le=2048, description="Candidates kept while building; more = better graph, slower build.")
    ef: int = Field(512, ge=1, le=4096, description=(
        "Candidates kept while searching (Qdrant's hnsw_ef); more = better recall, slower search. Must be >= "
        "the number of results asked for to have any effect."))
    full_scan_threshold_kb: int = Field(10_000, ge=0, description=(
        "Below this many KB of dense vectors a search scans exactly instead of using the graph "
        "(Qdrant's default 10000 KB = ~6.5k 384-d vectors)."))
    indexing_threshold_kb: int = Field(10_000, ge=0, description=(
        "Segments larger than this get an HNSW graph when the shard is optimized (Qdrant's default)."))


class StoreConfig(Config):
    """Where the index lives. ``QDRANT_URL`` (+ ``QDRANT_API_KEY``) in the environment selects a
    Qdrant server; otherwise an embedded engine inside the artifact."""

    collection: str = Field("llmflow_docs", description="Qdrant collection name (on a server).")
    embedded: Literal["edge", "local"] = Field("edge", description=(
        "Embedded engine when QDRANT_URL is unset. 'edge': Qdrant Edge, the Qdrant engine in-process "
        "(HNSW, WAL, snapshots a server can load). 'local': qdrant-client's local mode, pure-Python "
        "brute force that Qdrant documents for tests and prototypes."))
    hnsw: HnswConfig = Field(default_factory=HnswConfig, description="HNSW parameters (Edge and server).")
    timeout_s: float = Field(5.0, gt=0, description="Per-request timeout against a Qdrant server.")


class IndexConfig(Config):
    """``rag.index``: docs parquet → chunks → dense + sparse vectors → Qdrant."""

    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig, description="Chunking of documents.")
    sparse: SparseConfig = Field(default_factory=SparseConfig, description="Sparse (BM25-style) vectors.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Qdrant location and collection.")
    embed_batch_size: int = Field(32, ge=1, description="Chunks per embedding batch (Ray Data map_batches).")
    embed_concurrency: int = Field(1, ge=1, description=(
        "Embedding actors; each holds a copy of the model (~90 MB) and wants a CPU."))
    embed_num_gpus: float = Field(0.0, ge=0, description=(
        "GPUs per embedding actor (0 on CPU machines; e.g. 0.25 to pack four actors on one GPU)."))
    upsert_batch_size: int = Field(256, ge=1, description="Points per Qdrant upsert call.")
    max_docs: int | None = Field(None, ge=1, description="Index only the first N documents (None = all).")


class PushConfig(Config):
    """``rag.push``: serve a rag.index artifact (Qdrant Edge) from a Qdrant server."""

    url: str | None = Field(None, description=(
        "Qdrant server URL; None = QDRANT_URL from the environment (the API key always comes from QDRANT_API_KEY)."))
    collection: str | None = Field(None, description="Target collection; None = the index's own collection name.")
    timeout_s: float = Field(300.0, gt=0, description="Bound on the snapshot upload and the server's recovery.")


class FusionConfig(Config):
    """How hybrid search fuses its dense and sparse candidates: Qdrant's weighted reciprocal-rank
    fusion, score = sum over branches of weight / (rrf_k + rank). Defaults chosen by
    benchmarks/rag_fusion.py on the labelled questions (benchmarks/RESULTS.md, issue 19)."""

    rrf_k: int = Field(10, ge=1, description=(
        "RRF rank constant: small = the top few ranks of each branch dominate; Qdrant's default is 2."))
    dense_weight: float = Field(2.0, gt=0, description=(
        "Weight of the dense branch. Above sparse_weight because MiniLM matches plain-language "
        "questions better than BM25 does (dense alone beats BM25 alone on the labelled questions)."))
    sparse_weight: float = Field(1.0, gt=0, description="Weight of the sparse (BM25) branch.")


class RetrievalConfig(Config):
    """Query-time search: used by the router and by ``rag.evaluate``."""

    mode: Literal["dense", "hybrid"] = Field("hybrid", description="dense only, or dense + sparse fused by RRF.")
    top_k: int = Field(5, ge=1, le=100, description="Chunks returned.")
    prefetch_k: int = Field(50, ge=1, description="Candidates per branch (dense, sparse) before fusion.")
    fusion: FusionConfig = Field(default_factory=FusionConfig, description="Weighted RRF of the hybrid branches.")
    rerank: Literal["none", "dense"] = Field("none", description=(
        "Reorder fused candidates: 'dense' sorts the prefetch_k fused candidates by exact cosine "
        "to the query (no cross-encoder ships offline)."))

    @model_validator(mode="after")
    def _prefetch_covers_top_k(self) -> RetrievalConfig:
        if self.prefetch_k < self.top_k:
            raise ValueError(f"prefetch_k ({self.prefetch_k}) must be >= top_k ({self.top_k}); raise prefetch_k")
        return self


class EvaluateConfig(Config):
    """``rag.evaluate``: queries derived from the indexed documents, plus hand-written labelled
    questions → recall@k, MRR (nDCG@10 on derived queries) for dense, sparse and hybrid search."""

    num_queries: int = Field(100, ge=1, description=(
        "Queries to derive, at most one per indexed document (sampled); documents the index does not "
        "hold are never used."))
    seed: int = Field(0, description="Seed of query sampling.")
    ks: list[int] = Field(default_factory=lambda: [1, 5, 10], description=(
        "Cut-offs for recall@k (1 and 5 are always reported: the headline and its baselines use them)."))
    query_words: int = Field(8, ge=2, description="Content words kept in a derived query.")
    prefetch_k: int = Field(50, ge=10, description="Candidates per branch before fusion (hybrid).")
    fusion: FusionConfig = Field(default_factory=FusionConfig, description=(
        "Weighted RRF of the hybrid branches; keep it equal to the router's retrieval.fusion to measure what it serves."))
    labelled_questions: str | None = Field(BUILTIN, description=(
        'Hand-written questions, a JSONL file with one {"question": "...", "doc_ids": ["topics/break", ...]} '
        "per line, each labelled with every document that answers it. 'builtin' = the 50 Python questions "
        "shipped with llmflow (components/rag/labelled_questions.jsonl, labelled with stdlib pydoc topic ids, "
        "so they fit the built-in corpus); a path = your own file in that format (a relative path is taken "
        "from the directory the flow runs in); null = skip them (a corpus they do not cover). Only the "
        "questions with a labelled document in the index are scored; if none has one, the step fails."))
    min_gain_vs_random: float = Field(0.1, ge=0, description=(
        "The effect rag.evaluate must show: hybrid recall@1 above a random pick among the indexed documents "
        "by more than this, on the derived queries and on the labelled questions; less is a warning, or a "
        "failed step under the recipe's strict: true."))

    @field_validator("labelled_questions")
    @classmethod
    def _absolute_questions_path(cls, value: str | None) -> str | None:
        # steps run in Ray workers, whose working directory is not the recipe's
        if value is None or value == BUILTIN:
            return value
        return str(Path(value).expanduser().resolve())

    @model_validator(mode="after")
    def _ks_positive(self) -> EvaluateConfig:
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be a non-empty list of positive ints, got {self.ks}")
        return self

    @model_validator(mode="after")
    def _questions_parse(self) -> EvaluateConfig:
        # bad lines fail when the recipe is validated, with their line numbers, not minutes into a run
        if self.labelled_questions is not None:
            load_labelled_questions(labelled_questions_path(self.labelled_questions))
        return self

    @computed_field(description=(
        "sha256 of the labelled questions file: part of the step's address, so editing the file "
        "re-runs the step instead of reusing a cached result."))
    @property
    def labelled_questions_sha256(self) -> str | None:
        if self.labelled_questions is None:
            return None
        return hashlib.sha256(labelled_questions_path(self.labelled_questions).read_bytes()).hexdigest()
