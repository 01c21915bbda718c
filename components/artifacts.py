"""The formats one stage hands another, each with one typed writer and one reader.

Every reader takes an artifact folder (``X.read(path)``) or a step's input (``X.of(ctx, "name")``),
checks the layout and, when the folder is some other artifact, fails with ``WrongArtifactError``
naming the input, the step and the kind that makes the right one. No torch, Ray or transformers
here: every step imports this module.

Docs (``docs/part-*.parquet``), Tokens (``manifest.json`` + shards + ``tokenizer/``), Model (an HF
directory), Adapter (a PEFT directory), preferences (``preferences.jsonl``) and Endpoint
(``endpoint.json``); ARCHITECTURE.md lists who writes and who reads each.

    model_dir = Model.of(ctx).dir                # a step's ``model`` input, located or a clear error
    for doc in Docs.read("corpus/").rows(("id", "text")): ...
    Tokens.read("tokens/").seq_len

Preferences (the ``prefs`` artifact): ``preferences.jsonl``, one ``PreferenceRow`` per line —
``prompt``/``chosen``/``rejected`` plus where the pair came from. The online loop writes it
(``eval.feedback_prefs``, ``OnlineEvaluator.export_preferences``, ``POST /online/export``);
``rl.dpo`` and ``rl.reward_model`` read it. A hand-made dataset needs only the three text fields.

    write_preferences("prefs/", [PreferenceRow(prompt="2+2?", chosen="4", rejected="five")])
    rows = read_preferences("prefs/")      # the artifact folder or the file itself
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PREFERENCES_FILE = "preferences.jsonl"
PREFERENCES_MADE_BY = ("eval.feedback_prefs (or the online loop's OnlineEvaluator.export_preferences / "
                       "POST /online/export)")


class PreferenceRow(BaseModel):
    """One preference pair and its provenance."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The user's prompt (redacted when it comes from live traffic).")
    chosen: str = Field(description="The preferred response.")
    rejected: str = Field(description="The dispreferred response to the same prompt.")
    source: Literal["feedback", "judge", "external"] = Field(
        "external", description="feedback: a thumbs-up and a thumbs-down answer to the same prompt; judge: a "
                                "shadow/A-B comparison the judge decided; external: written outside llmflow.")
    trace_ids: list[str] = Field(
        default_factory=list, description="MLflow trace ids of the requests behind the pair: feedback → "
                                          "[chosen's, rejected's]; judge → [the shadowed request's].")
    verdict: Literal["a", "b"] | None = Field(None, description="judge: which answer (a = primary) won.")
    messages: list[dict] | None = Field(
        None, description="The chat the model answered, without the answer (live traffic: the router's grounded "
                          "prompt with its sources, redacted). Training renders it instead of `prompt`: a pair "
                          "must train on what the model saw.")
    created_at: str | None = Field(None, description="When the pair was exported (ISO 8601, UTC).")

    def pair(self) -> dict:
        """The fields training uses (``messages`` only when the row has them)."""
        out = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return out | ({"messages": self.messages} if self.messages is not None else {})


def write_preferences(out_dir: str | Path, rows: Iterable[PreferenceRow]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PREFERENCES_FILE
    with open(path, "w") as f:
        f.writelines(row.model_dump_json(exclude_none=True) + "\n" for row in rows)
    return path


def read_preferences(artifact: str | Path, *, input: str | None = None, step: str | None = None) -> list[PreferenceRow]:
    """Rows of a ``prefs`` artifact folder (or of its ``preferences.jsonl``); every line is validated."""
    path = Path(artifact)
    if path.is_dir():
        path = path / PREFERENCES_FILE
    if not path.is_file():
        error = wrong_artifact("prefs", path.parent, PREFERENCES_FILE, input, step)
        if (path.parent / "pairs.jsonl").is_file():
            error.args = (f"{error} (pairs.jsonl is the old name of {PREFERENCES_FILE}: rename it)",)
        raise error
    rows, problems = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(PreferenceRow.model_validate_json(line))
        except ValidationError as e:
            problems += [f"{path}:{i}: {'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}" for err in e.errors()]
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in {path}; each line must be a JSON object with prompt, "
                         "chosen, rejected (and optionally source, trace_ids, verdict, messages, created_at):\n  "
                         + "\n  ".join(problems[:20]))
    return rows


# -- wrong artifacts -------------------------------------------------------------------------------
class WrongArtifactError(FileNotFoundError):
    """An input is not the artifact its step needs; the message names the kind that makes the right one."""


# The kinds that make each format, for the error when an input is not one.
MADE_BY = {
    "docs": "data.corpus, data.clean or data.dedup",
    "tokens": "tokenize.pack",
    "model": "train.pretrain, models.import or distill.draft",
    "adapter": "sft.lora, rl.grpo or rl.dpo",
    "prefs": PREFERENCES_MADE_BY,
    "endpoint": "serve.deploy (the LLM) or serve.rag (the RAG router)",
}
# How to recognise what was given instead: the first marker that matches names it. Order matters
# where one artifact holds another's marker (a tokens artifact carries a tokenizer/ copy).
_RECOGNISED = (
    ("docs/part-*.parquet", f"a docs artifact (made by {MADE_BY['docs']})"),
    ("manifest.json", f"a tokens artifact (made by {MADE_BY['tokens']})"),
    ("model/config.json", f"a model artifact (made by {MADE_BY['model']})"),
    ("merged/config.json", "an sft.lora artifact with a merged model"),
    ("adapter/adapter_config.json", f"an adapter artifact (made by {MADE_BY['adapter']})"),
    (PREFERENCES_FILE, "a prefs artifact"),
    ("endpoint.json", "an endpoint artifact (made by serve.deploy or serve.rag)"),
    ("sft.jsonl", "an sft.dataset artifact"),
    ("index.json", "a rag.index artifact"),
    ("tokenizer/tokenizer.json", "a tokenize.train artifact"),
    ("config.json", "a bare Hugging Face model directory"),
    ("adapter_config.json", "a bare PEFT adapter directory"),
)


def _looks_like(folder: Path) -> str:
    """What ``folder`` is, for an error message: a known artifact, its first files, or missing."""
    if not folder.is_dir():
        return "it does not exist"
    for marker, what in _RECOGNISED:
        if next(folder.glob(marker), None) is not None:
            return f"it looks like {what}"
    found = sorted(p.name for p in folder.iterdir())[:8]
    return f"it holds {found or 'nothing'}"


def wrong_artifact(kind: str, artifact: Path, missing: str, input: str | None = None, step: str | None = None,
                   made_by: str | None = None) -> WrongArtifactError:
    """The error for an input that is not a ``kind`` artifact: which input, what is missing, who makes one."""
    if input and step:
        where = f"input {input!r} of step {step!r} ({artifact})"
    elif input:
        where = f"input {input!r} ({artifact})"
    else:
        where = str(artifact)
    article = "an" if kind[0] in "aeiou" else "a"
    return WrongArtifactError(f"{where} is not {article} {kind} artifact (no {missing}); {_looks_like(artifact)}. "
                              f"{article.capitalize()} {kind} artifact comes from {made_by or MADE_BY[kind]}")


# -- docs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Docs:
    """A docs artifact: ``docs/part-*.parquet`` shards with the str columns id, text, source, title.

    ``Docs.write(records, out)`` writes one; ``Docs.read(path).rows()`` streams it back in shard order.
    """

    root: Path
    shards: tuple[Path, ...]

    FOLDER: ClassVar[str] = "docs"
    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "text", "source", "title")

    @classmethod
    def read(cls, artifact: str | Path, *, input: str | None = None, step: str | None = None) -> Docs:
        root = Path(artifact)
        shards = tuple(sorted((root / cls.FOLDER).glob("part-*.parquet")))
        if not shards:
            raise wrong_artifact("docs", root, f"{cls.FOLDER}/part-*.parquet", input, step)
        return cls(root, shards)

    @classmethod
    def of(cls, ctx, input: str = "docs") -> Docs:
        return cls.read(ctx.input(input), input=input, step=ctx.name)

    @classmethod
    def schema(cls):
        import pyarrow as pa

        return pa.schema([(c, pa.string()) for c in cls.COLUMNS])

    def rows(self, columns: Iterable[str] = COLUMNS) -> Iterator[dict]:
        """The documents as dicts of ``columns``, in shard order (plain Python, no Ray)."""
        import pyarrow.parquet as pq

        for path in self.shards:
            yield from pq.read_table(path, columns=list(columns)).to_pylist()

    def num_docs(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.shards)

    @classmethod
    def write(cls, records: Iterable[dict], artifact: str | Path, docs_per_shard: int = 2000) -> int:
        """Write records (dicts with the four str columns) as numbered shards; returns how many were written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = Path(artifact) / cls.FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        schema, buf, shard, total = cls.schema(), [], 0, 0

        def flush():
            nonlocal shard, buf
            pq.write_table(pa.Table.from_pylist(buf, schema=schema), folder / f"part-{shard:05d}.parquet")
            shard, buf = shard + 1, []

        for rec in records:
            buf.append({c: str(rec.get(c) or "") for c in cls.COLUMNS})
            total += 1
            if len(buf) >= docs_per_shard:
                flush()
        if buf or shard == 0:  # an empty corpus still yields one (empty) shard so readers see the schema
            flush()
        return total


# -- tokens ----------------------------------------------------------------------------------------
TOKENS_MANIFEST = "manifest.json"


class Tokens(BaseModel):
    """The manifest of a tokens artifact (``manifest.json``): fixed-length blocks of token ids in raw
    ``<split>/shard-NNNNN.bin`` files (row-major (num_blocks, seq_len) arrays of ``dtype``), plus a
    ``tokenizer/`` copy. ``components.train.data.TokenBlocks`` memory-maps the shards.

        Tokens.read("tokens/").vocab_size
        Tokens.write_blocks("tokens/", {"train": [blocks], "val": [val_blocks]}, vocab_size=512)
    """

    model_config = ConfigDict(extra="forbid")

    seq_len: int = Field(ge=1, description="Tokens per block: the context pretraining trains on.")
    dtype: Literal["uint16", "uint32"] = Field(description="numpy dtype of the shard files (uint16 while the "
                                                           "vocabulary fits).")
    vocab_size: int = Field(ge=1, description="Token ids are below this (the tokenizer's size, added tokens in).")
    train: list[str] = Field(description="Training shard files, relative to the artifact, in read order.")
    val: list[str] = Field(description="Validation shard files, relative to the artifact, in read order.")
    num_train_blocks: int = Field(ge=0, description="Blocks in all train shards together.")
    num_val_blocks: int = Field(ge=0, description="Blocks in all val shards together.")
    num_train_tokens: int = Field(ge=0, description="num_train_blocks × seq_len.")
    num_val_tokens: int = Field(ge=0, description="num_val_blocks × seq_len.")
    tokenizer_sha256: str | None = Field(None, description="Content hash of tokenizer/ "
                                         "(components.tokenize.bpe.tokenizer_sha256); None: no tokenizer copy.")
    eos_token_id: int | None = Field(None, description="The id that ends every document in the stream.")
    num_train_docs: int | None = Field(None, ge=0, description="Documents packed into train (tokenize.pack).")
    num_val_docs: int | None = Field(None, ge=0, description="Documents packed into val (tokenize.pack).")
    num_dropped_tail_tokens: int | None = Field(None, ge=0, description="Tokens left over that filled no block.")
    val_fraction: float | None = Field(None, ge=0, le=1, description="Share of documents sent to val.")
    split_seed: int | None = Field(None, description="Seed of the per-document train/val split.")

    SPLITS: ClassVar[tuple[str, str]] = ("train", "val")
    TOKENIZER_DIR: ClassVar[str] = "tokenizer"

    @model_validator(mode="after")
    def _counts_agree(self) -> Tokens:
        for split in self.SPLITS:
            blocks, tokens = getattr(self, f"num_{split}_blocks"), getattr(self, f"num_{split}_tokens")
            if tokens != blocks * self.seq_len:
                raise ValueError(f"num_{split}_tokens={tokens} is not num_{split}_blocks × seq_len = "
                                 f"{blocks} × {self.seq_len}")
        return self

    @staticmethod
    def shard_name(split: str, index: int) -> str:
        """Where shard ``index`` of ``split`` lives inside the artifact (the name tokenize.pack writes)."""
        return f"{split}/shard-{index:05d}.bin"

    def num_blocks(self, split: str) -> int:
        return getattr(self, f"num_{split}_blocks")

    @classmethod
    def read(cls, artifact: str | Path, *, input: str | None = None, step: str | None = None) -> Tokens:
        root = Path(artifact)
        path = root / TOKENS_MANIFEST
        if not path.is_file():
            raise wrong_artifact("tokens", root, TOKENS_MANIFEST, input, step)
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as e:
            problems = [f"{'.'.join(map(str, err['loc'])) or 'manifest'}: {err['msg']}" for err in e.errors()]
            raise ValueError(f"{path} is not a valid tokens manifest ({len(problems)} problem(s)); rerun "
                             f"{MADE_BY['tokens']}:\n  " + "\n  ".join(problems)) from None

    @classmethod
    def of(cls, ctx, input: str = "tokens") -> Tokens:
        return cls.read(ctx.input(input), input=input, step=ctx.name)

    def write(self, artifact: str | Path) -> Path:
        path = Path(artifact) / TOKENS_MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2, exclude_none=True))
        return path

    @classmethod
    def write_blocks(cls, artifact: str | Path, blocks: dict[str, list[Any]], vocab_size: int,
                     tokenizer_sha256: str | None = None, **provenance: Any) -> Tokens:
        """A tokens artifact from in-memory blocks: each (n, seq_len) numpy array of ``blocks[split]``
        becomes one shard. For tests and benchmarks; tokenize.pack streams its shards itself."""
        import numpy as np

        root = Path(artifact)
        arrays = {split: [np.ascontiguousarray(a) for a in blocks.get(split, []) if len(a)] for split in cls.SPLITS}
        every = [a for split in cls.SPLITS for a in arrays[split]]
        if not every:
            raise ValueError("write_blocks needs at least one non-empty array of blocks")
        seq_len, dtype = every[0].shape[1], every[0].dtype
        if any(a.ndim != 2 or a.shape[1] != seq_len or a.dtype != dtype for a in every):
            raise ValueError(f"every array must be (n, {seq_len}) of {dtype}")
        paths: dict[str, list[str]] = {}
        for split in cls.SPLITS:
            paths[split] = [cls.shard_name(split, i) for i in range(len(arrays[split]))]
            for rel, array in zip(paths[split], arrays[split]):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                array.tofile(root / rel)
        counts = {split: sum(len(a) for a in arrays[split]) for split in cls.SPLITS}
        manifest = cls(seq_len=seq_len, dtype=dtype.name, vocab_size=vocab_size, train=paths["train"],
                       val=paths["val"], num_train_blocks=counts["train"], num_val_blocks=counts["val"],
                       num_train_tokens=counts["train"] * seq_len, num_val_tokens=counts["val"] * seq_len,
                       tokenizer_sha256=tokenizer_sha256, **provenance)
        manifest.write(root)
        return manifest


# -- model and adapter -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A model artifact's Hugging Face directory (config.json, safetensors, tokenizer).

    The one rule: ``<artifact>/model`` (train.pretrain, distill.draft, rl.reward_model), else
    ``<artifact>/merged`` (sft.lora with ``merge: true``), else the artifact itself when it is a
    bare HF directory (a model made outside llmflow, the tests' tiny model).
    """

    dir: Path

    SUBDIR: ClassVar[str] = "model"  # where the kinds that make models write them
    MERGED: ClassVar[str] = "merged"  # sft.lora's base + adapter, folded
    SUBDIRS: ClassVar[tuple[str, ...]] = (SUBDIR, MERGED)
    MARKER: ClassVar[str] = "config.json"

    @classmethod
    def read(cls, artifact: str | Path, *, input: str | None = None, step: str | None = None,
             made_by: str | None = None) -> Model:
        root = Path(artifact)
        for cand in (*(root / sub for sub in cls.SUBDIRS), root):
            if (cand / cls.MARKER).is_file():
                return cls(cand)
        raise wrong_artifact("model", root, f"{cls.SUBDIRS[0]}/{cls.MARKER}", input, step, made_by)

    @classmethod
    def of(cls, ctx, input: str = "model") -> Model:
        return cls.read(ctx.input(input), input=input, step=ctx.name)


@dataclass(frozen=True)
class Adapter:
    """A PEFT adapter artifact's directory: ``<artifact>/adapter`` (sft.lora, rl.grpo, rl.dpo), else
    the artifact itself when it is a bare PEFT directory. It may carry the tokenizer it was trained with."""

    dir: Path

    SUBDIR: ClassVar[str] = "adapter"
    MARKER: ClassVar[str] = "adapter_config.json"

    @classmethod
    def read(cls, artifact: str | Path, *, input: str | None = None, step: str | None = None) -> Adapter:
        root = Path(artifact)
        for cand in (root / cls.SUBDIR, root):
            if (cand / cls.MARKER).is_file():
                return cls(cand)
        raise wrong_artifact("adapter", root, f"{cls.SUBDIR}/{cls.MARKER}", input, step)

    @classmethod
    def of(cls, ctx, input: str = "adapter") -> Adapter:
        return cls.read(ctx.input(input), input=input, step=ctx.name)

    @property
    def has_tokenizer(self) -> bool:
        return (self.dir / "tokenizer_config.json").is_file()


# -- endpoint --------------------------------------------------------------------------------------
ENDPOINT_FILE = "endpoint.json"
_SERVED_BY = {"llm": "serve.deploy", "rag": "serve.rag"}


class Endpoint(BaseModel):
    """``endpoint.json``: how to reach an app a serving step left running — never the key itself.

    ``served="llm"`` (serve.deploy: the OpenAI-compatible LLM app) or ``"rag"`` (serve.rag: the RAG
    router in front of it); the fields marked "llm" or "rag" are set only for that app.
    """

    model_config = ConfigDict(extra="forbid")

    served: Literal["llm", "rag"] = Field(description="What answers at url: the LLM app (serve.deploy) or the RAG "
                                                      "router (serve.rag).")
    url: str = Field(description="OpenAI-compatible base URL (…/v1).")
    health_url: str = Field(description="GET answers 200 while the app is up.")
    app_name: str = Field(description="The Ray Serve application's name.")
    api_key_env: str | None = Field(None, description="Variable holding the bearer key; None: no auth.")
    api_key_file: str | None = Field(None, description="File holding the flow's key when the variable was unset "
                                                       "(serve.steps.auth.endpoint_api_key reads it).")
    startup_s: float | None = Field(None, ge=0, description="Seconds from deploy to healthy.")
    # llm
    deployment: str | None = Field(None, description="llm: the Serve deployment a router's handle calls.")
    model: str | None = Field(None, description="llm: the served base model's name (what clients send).")
    models: list[str] = Field(default_factory=list, description="llm: every servable name: the base, then adapters.")
    adapters: dict[str, str] = Field(default_factory=dict, description="llm: adapter name → its directory.")
    speculative: dict[str, Any] | None = Field(None, description="llm: the speculative decoding settings.")
    admission_limit: int | None = Field(None, ge=1, description="llm: requests a router may send at once "
                                                                "(more come back 429).")
    tokenizer: str | None = Field(None, description="llm: the tokenizer the engine counts prompts with.")
    max_model_len: int | None = Field(None, ge=1, description="llm: context length in tokens (prompt + output).")
    smoke: dict[str, float] | None = Field(None, description="llm: the deploy-time smoke request's timings.")
    served_model: str | None = Field(None, description="llm: the name clients (and the RAG router) ask for by "
                                                       "default: the adapter the gate let through, else the base.")
    gate: dict[str, Any] | None = Field(None, description="llm: what the gate decided to serve (candidate, champion "
                                                          "or base) and why (serve.steps.deploy.gate_decision).")
    # rag
    llm_url: str | None = Field(None, description="rag: the URL of the LLM app behind the router.")
    feedback_url: str | None = Field(None, description="rag: POST thumbs here (None: online evaluation is off).")
    online_metrics_url: str | None = Field(None, description="rag: the online evaluation's metrics.")
    feedback_path: str | None = Field(None, description="rag: the feedback log the online loop appends to.")
    control_path: str | None = Field(None, description="rag: the router's live routing state (serve.router.control).")

    @model_validator(mode="after")
    def _fields_of_the_app(self) -> Endpoint:
        needed = ("deployment", "model") if self.served == "llm" else ("llm_url",)
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a served={self.served!r} endpoint needs {missing}")
        return self

    @classmethod
    def read(cls, artifact: str | Path, *, served: Literal["llm", "rag"] | None = None, input: str | None = None,
             step: str | None = None) -> Endpoint:
        """The endpoint of a serving step's artifact; ``served`` also checks which app it describes."""
        root = Path(artifact)
        path = root / ENDPOINT_FILE
        if not path.is_file():
            made_by = f"{_SERVED_BY[served]}" if served else None
            raise wrong_artifact("endpoint", root, ENDPOINT_FILE, input, step, made_by)
        try:
            endpoint = cls.model_validate_json(path.read_text())
        except ValidationError as e:
            problems = [f"{'.'.join(map(str, err['loc'])) or 'endpoint'}: {err['msg']}" for err in e.errors()]
            raise ValueError(f"{path} is not a valid endpoint description ({len(problems)} problem(s)); rerun "
                             f"the step that wrote it:\n  " + "\n  ".join(problems)) from None
        if served is not None and endpoint.served != served:
            where = f"input {input!r} of step {step!r} ({root})" if input and step else str(root)
            raise WrongArtifactError(f"{where} is the endpoint of {_SERVED_BY[endpoint.served]}, not of "
                                     f"{_SERVED_BY[served]}: wire it to a {_SERVED_BY[served]} step")
        return endpoint

    @classmethod
    def of(cls, ctx, input: str = "endpoint", served: Literal["llm", "rag"] | None = None) -> Endpoint:
        return cls.read(ctx.input(input), served=served, input=input, step=ctx.name)

    def write(self, artifact: str | Path) -> Path:
        path = Path(artifact) / ENDPOINT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        return path
