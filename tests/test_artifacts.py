"""components.artifacts: each format's reader and writer, their validation and their wrong-artifact errors."""
import json

import numpy as np
import pytest
from pydantic import ValidationError

from components.artifacts import (
    ENDPOINT_FILE,
    PREFERENCES_FILE,
    TOKENS_MANIFEST,
    Adapter,
    Docs,
    Endpoint,
    Model,
    PreferenceRow,
    Tokens,
    WrongArtifactError,
    read_preferences,
    write_preferences,
)
from flows.engine.context import StepContext


def test_preferences_round_trip_through_the_folder_and_the_file(tmp_path):
    rows = [PreferenceRow(prompt="2+2?", chosen="4", rejected="five", source="feedback", trace_ids=["tr-1", "tr-2"],
                          created_at="2026-01-01T00:00:00+00:00"),
            PreferenceRow(prompt="q", chosen="a", rejected="b", source="judge", trace_ids=["tr-3"], verdict="a")]
    path = write_preferences(tmp_path / "prefs", rows)
    assert path == tmp_path / "prefs" / PREFERENCES_FILE == tmp_path / "prefs" / "preferences.jsonl"
    assert read_preferences(tmp_path / "prefs") == rows == read_preferences(path)
    assert "verdict" not in json.loads(path.read_text().splitlines()[0])  # unset provenance is left out
    assert rows[0].pair() == {"prompt": "2+2?", "chosen": "4", "rejected": "five"}


def test_a_hand_made_file_needs_only_the_three_texts(tmp_path):
    (tmp_path / PREFERENCES_FILE).write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n\n')
    [row] = read_preferences(tmp_path)
    assert row.source == "external" and row.trace_ids == [] and row.created_at is None


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    (tmp_path / PREFERENCES_FILE).write_text('{"prompt": "q", "chosen": "a"}\n'
                                             '{"prompt": "q", "chosen": "a", "rejected": "b"}\n'
                                             '{"prompt": "q", "chosen": "a", "rejected": "b", "source": "thumbs"}\n'
                                             'not json\n')
    with pytest.raises(ValueError) as e:
        read_preferences(tmp_path)
    msg = str(e.value)
    assert "3 problem(s)" in msg and ":1: rejected" in msg and ":3: source" in msg and ":4:" in msg and ":2:" not in msg


def test_a_wrong_artifact_names_the_kind_that_makes_a_prefs_one(tmp_path):
    (tmp_path / "prompts.jsonl").write_text("{}\n")  # an sft.dataset folder given as `prefs`
    with pytest.raises(FileNotFoundError, match=r"not a prefs artifact.*prompts\.jsonl.*eval\.feedback_prefs"):
        read_preferences(tmp_path)
    (tmp_path / "pairs.jsonl").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match="pairs.jsonl is the old name"):
        read_preferences(tmp_path)
    with pytest.raises(FileNotFoundError, match="eval.feedback_prefs"):
        read_preferences(tmp_path / "missing")


@pytest.mark.parametrize("config", ["DPOConfig", "RewardModelConfig"])
def test_rl_configs_read_the_one_file_name_and_reject_the_old_key(config):
    import components.rl.config as rl_config

    cls = getattr(rl_config, config)
    assert "pairs_file" not in cls.model_fields
    with pytest.raises(ValueError, match="'pairs_file' was removed.*preferences.jsonl"):
        cls.model_validate({"pairs_file": "pairs.jsonl"})


# -- the readers of the other formats -------------------------------------------------------------
def _docs(root, num_docs=5, per_shard=2):
    Docs.write(({"id": f"d{i}", "text": f"text {i}", "title": f"t{i}", "source": "test"} for i in range(num_docs)),
               root, docs_per_shard=per_shard)
    return root


def _tokens(root, seq_len=4):
    blocks = np.arange(6 * seq_len, dtype=np.uint16).reshape(6, seq_len)
    Tokens.write_blocks(root, {"train": [blocks[:3], blocks[3:5]], "val": [blocks[5:]]}, vocab_size=64)
    return root


def _hf_dir(root, marker, sub=None):
    folder = root / sub if sub else root
    folder.mkdir(parents=True, exist_ok=True)
    (folder / marker).write_text("{}")
    return root


def _llm_endpoint(**fields):
    return Endpoint(served="llm", url="http://127.0.0.1:8000/v1", health_url="http://127.0.0.1:8000/health",
                    app_name="llmflow", deployment="LLMDeployment", model="llmflow", **fields)


def test_docs_round_trip_in_shard_order(tmp_path):
    docs = Docs.read(_docs(tmp_path / "a"))
    assert [p.name for p in docs.shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [d["id"] for d in docs.rows()] == ["d0", "d1", "d2", "d3", "d4"] and docs.num_docs() == 5
    assert next(docs.rows(("id", "text"))) == {"id": "d0", "text": "text 0"}
    assert Docs.write([], tmp_path / "empty") == 0  # one empty shard, so readers still see the schema
    assert Docs.read(tmp_path / "empty").num_docs() == 0 and list(Docs.read(tmp_path / "empty").rows()) == []


def test_tokens_manifest_round_trip_and_token_blocks_read_it(tmp_path):
    from components.train.data import TokenBlocks

    manifest = Tokens.read(_tokens(tmp_path))
    assert manifest.train == ["train/shard-00000.bin", "train/shard-00001.bin"] and manifest.val == ["val/shard-00000.bin"]
    assert (manifest.seq_len, manifest.dtype, manifest.num_train_blocks, manifest.num_val_tokens) == (4, "uint16", 5, 4)
    assert "num_train_docs" not in json.loads((tmp_path / TOKENS_MANIFEST).read_text())  # unknown provenance: left out
    blocks = TokenBlocks(tmp_path, "train")
    assert len(blocks) == 5 and blocks.take(np.array([4]))[0].tolist() == [16, 17, 18, 19]


def test_a_bad_tokens_manifest_lists_every_problem(tmp_path):
    manifest = Tokens.read(_tokens(tmp_path)).model_dump()
    manifest.update(dtype="int8", num_val_tokens=5, shards=["x"])
    (tmp_path / TOKENS_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"not a valid tokens manifest \(2 problem\(s\)\); rerun tokenize.pack") as e:
        Tokens.read(tmp_path)
    assert "dtype" in str(e.value) and "shards: Extra inputs are not permitted" in str(e.value)
    manifest.update(dtype="uint16", shards=None)
    del manifest["shards"]
    (tmp_path / TOKENS_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"num_val_tokens=5 is not num_val_blocks × seq_len = 1 × 4"):
        Tokens.read(tmp_path)


def test_model_and_adapter_follow_one_rule(tmp_path):
    assert Model.read(_hf_dir(tmp_path / "pretrain", "config.json", "model")).dir == tmp_path / "pretrain" / "model"
    assert Model.read(_hf_dir(tmp_path / "merged", "config.json", "merged")).dir == tmp_path / "merged" / "merged"
    assert Model.read(_hf_dir(tmp_path / "bare", "config.json")).dir == tmp_path / "bare"
    assert Adapter.read(_hf_dir(tmp_path / "sft", "adapter_config.json", "adapter")).dir == tmp_path / "sft" / "adapter"
    assert Adapter.read(_hf_dir(tmp_path / "peft", "adapter_config.json")).dir == tmp_path / "peft"
    assert not Adapter.read(tmp_path / "peft").has_tokenizer


def test_endpoint_round_trip_and_which_app_it_describes(tmp_path):
    llm = _llm_endpoint(api_key_env="LLMFLOW_API_KEY", api_key_file="/wd/.llmflow/secrets/api_key",
                        tokenizer="/m/model", max_model_len=512, admission_limit=32, smoke={"smoke_chunks": 3.0})
    llm.write(tmp_path / "serve")
    assert Endpoint.read(tmp_path / "serve", served="llm") == llm
    rag = Endpoint(served="rag", url="http://h/rag/v1", health_url="http://h/rag/health", app_name="rag",
                   llm_url=llm.url)
    rag.write(tmp_path / "rag_serve")
    ctx = StepContext.for_test(tmp_path / "out", {"endpoint": tmp_path / "rag_serve"}, name="rag_serve")
    with pytest.raises(WrongArtifactError, match=r"input 'endpoint' of step 'rag_serve' .* is the endpoint of "
                                                 r"serve.rag, not of serve.deploy: wire it to a serve.deploy step"):
        Endpoint.of(ctx, "endpoint", served="llm")
    with pytest.raises(ValidationError, match=r"a served='llm' endpoint needs \['deployment', 'model'\]"):
        Endpoint(served="llm", url="u", health_url="h", app_name="a")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / ENDPOINT_FILE).write_text(json.dumps({**llm.model_dump(), "llm": "http://x"}))
    with pytest.raises(ValueError, match=r"(?s)not a valid endpoint description.*llm: Extra inputs"):
        Endpoint.read(tmp_path / "old")


def test_readers_refuse_another_artifact_and_name_the_kind_that_makes_theirs(tmp_path):
    docs, tokens = _docs(tmp_path / "docs"), _tokens(tmp_path / "tokens")
    model = _hf_dir(tmp_path / "pretrain", "config.json", "model")
    ctx = StepContext.for_test(tmp_path / "out", {"model": docs, "docs": tokens, "tokens": model, "adapter": model,
                                                  "endpoint": docs}, name="X")
    cases = [
        (lambda: Model.of(ctx), (r"input 'model' of step 'X' \(.*\) is not a model artifact \(no model/config.json\); "
                                r"it looks like a docs artifact \(made by data.corpus, data.clean or data.dedup\)\. "
                                r"A model artifact comes from train.pretrain, models.import or distill.draft")),
        (lambda: Docs.of(ctx), (r"input 'docs' of step 'X' .* not a docs artifact \(no docs/part-\*\.parquet\); it "
                               r"looks like a tokens artifact .* comes from data.corpus, data.clean or data.dedup")),
        (lambda: Tokens.of(ctx), (r"input 'tokens' .* not a tokens artifact \(no manifest.json\); it looks like a "
                                 r"model artifact .* comes from tokenize.pack")),
        (lambda: Adapter.of(ctx), (r"input 'adapter' .* not an adapter artifact \(no adapter/adapter_config.json\); "
                                  r"it looks like a model artifact .* comes from sft.lora, rl.grpo or rl.dpo")),
        (lambda: Endpoint.of(ctx, served="llm"), (r"not an endpoint artifact \(no endpoint.json\); it looks like a "
                                                 r"docs artifact .* comes from serve.deploy")),
        (lambda: Model.read(tmp_path / "nowhere"), r"nowhere is not a model artifact.*it does not exist"),
        (lambda: Docs.read(_hf_dir(tmp_path / "odd", "notes.txt")), r"it holds \['notes.txt'\]"),
    ]
    for read, message in cases:
        with pytest.raises(WrongArtifactError, match=message):
            read()
    assert issubclass(WrongArtifactError, FileNotFoundError)


def test_the_shared_base_stays_light_at_import():
    import subprocess
    import sys

    code = ("import sys, components.artifacts; "
            "print(sorted({'torch', 'ray', 'transformers', 'pyarrow', 'numpy'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# (kind, its inputs by artifact, the input that is wrong, who makes the right one). Every step
# checks its inputs before any slow work: none of these starts Ray, loads a model or reaches MLflow.
WRONG_INPUTS = [
    ("data.clean", {"docs": "tokens"}, "docs", "data.corpus"),
    ("data.dedup", {"docs": "model"}, "docs", "data.corpus"),
    ("tokenize.train", {"docs": "model"}, "docs", "data.corpus"),
    ("tokenize.pack", {"docs": "tokens", "tokenizer": "tokens"}, "docs", "data.corpus"),
    ("train.pretrain", {"tokens": "docs"}, "tokens", "tokenize.pack"),
    ("distill.draft", {"model": "docs", "tokens": "tokens"}, "model", "train.pretrain, models.import or distill.draft"),
    ("distill.draft", {"model": "model", "tokens": "docs"}, "tokens", "tokenize.pack"),
    ("sft.dataset", {"docs": "tokens"}, "docs", "data.corpus"),
    ("sft.lora", {"model": "tokens", "data": "data"}, "model", "train.pretrain, models.import or distill.draft"),
    ("rl.grpo", {"model": "docs", "data": "data"}, "model", "train.pretrain, models.import or distill.draft"),
    ("rl.grpo", {"model": "model", "data": "data", "adapter": "model"}, "adapter", "sft.lora, rl.grpo or rl.dpo"),
    ("rl.dpo", {"model": "model", "prefs": "docs"}, "prefs", "eval.feedback_prefs"),
    ("rl.reward_model", {"model": "docs", "prefs": "prefs"}, "model", "train.pretrain, models.import or distill.draft"),
    ("tune.sweep", {"tokens": "model"}, "tokens", "tokenize.pack"),
    ("rag.index", {"docs": "tokens"}, "docs", "data.corpus"),
    ("rag.evaluate", {"docs": "model", "index": "model"}, "docs", "data.corpus"),
    ("eval.offline", {"model": "docs", "data": "data"}, "model", "train.pretrain, models.import or distill.draft"),
    ("eval.offline", {"model": "model", "data": "data", "adapter": "model"}, "adapter", "sft.lora"),
    ("eval.offline", {"model": "model", "data": "data", "tokens": "docs"}, "tokens", "tokenize.pack"),
    ("serve.deploy", {"model": "docs"}, "model", "train.pretrain, models.import or distill.draft"),
    ("serve.deploy", {"model": "model", "draft": "tokens"}, "draft", "train.pretrain, models.import or distill.draft"),
    ("serve.deploy", {"model": "model", "adapter": "model"}, "adapter", "sft.lora"),
    ("serve.rag", {"endpoint": "rag_endpoint", "index": "model"}, "endpoint", "serve.deploy"),
    ("serve.smoke", {"endpoint": "llm_endpoint", "rag": "llm_endpoint"}, "rag", "serve.rag"),
    ("serve.smoke", {"endpoint": "docs", "rag": "rag_endpoint"}, "endpoint", "serve.deploy"),
]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("artifacts")
    data = root / "data"
    data.mkdir()
    (data / "prompts.jsonl").write_text('{"prompt": "2+2=", "answer": "4"}\n')
    (data / "eval.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    rag = Endpoint(served="rag", url="http://h/rag/v1", health_url="http://h/rag/health", app_name="rag",
                   llm_url="http://h/v1")
    rag.write(root / "rag_endpoint")
    _llm_endpoint().write(root / "llm_endpoint")
    write_preferences(root / "prefs", [PreferenceRow(prompt=f"q{i}", chosen="a", rejected="b") for i in range(8)])
    return {"docs": _docs(root / "docs"), "tokens": _tokens(root / "tokens"), "data": data, "prefs": root / "prefs",
            "model": _hf_dir(root / "model", "config.json", "model"), "rag_endpoint": root / "rag_endpoint",
            "llm_endpoint": root / "llm_endpoint"}


@pytest.mark.parametrize(("kind", "inputs", "wrong", "made_by"), WRONG_INPUTS,
                         ids=[f"{k}-{w}" for k, _, w, _ in WRONG_INPUTS])
def test_every_step_refuses_a_wrong_artifact_naming_the_kind_that_makes_the_right_one(
        kind, inputs, wrong, made_by, artifacts, tmp_path, monkeypatch):
    from flows.engine.registry import get

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # never reached
    step = get(kind)
    ctx = StepContext.for_test(tmp_path / "out", {name: artifacts[a] for name, a in inputs.items()}, name="the_step")
    with pytest.raises(WrongArtifactError, match=rf"input '{wrong}' of step 'the_step' .*{made_by}"):
        step.run(ctx, step.config())
