"""models.import: tiny models of four architectures import as model artifacts; every bad input is refused
before anything is written, with an error that names the problem and its fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.artifacts import Model
from components.models.import_config import ImportConfig
from components.models.importer import ImportRefused
from components.models.steps import run_import
from flows.engine.context import StepContext


def _import(out: Path, source: Path, **config):
    return run_import(StepContext.for_test(out), ImportConfig(source=str(source), **config))


def _refused(tmp_path: Path, source: Path, match: str, **config) -> str:
    out = tmp_path / "artifact"
    with pytest.raises(ImportRefused, match=match) as e:
        _import(out, source, **config)
    assert not (out / "model").exists() and not (out / "import.json").exists()  # nothing half-written
    return str(e.value)


@pytest.fixture
def user_dir(tmp_path, hf_model_dirs) -> Path:
    """A private copy of the tiny Qwen2 directory, for a test to break."""
    return Path(shutil.copytree(hf_model_dirs["qwen2"], tmp_path / "user_model"))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "qwen2_moe"])
def test_each_architecture_imports_as_a_model_artifact(tmp_path, hf_model_dirs, arch):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    metrics = _import(tmp_path / "a", hf_model_dirs[arch])
    model_dir = Model.read(tmp_path / "a").dir
    assert model_dir == tmp_path / "a" / "model"  # where train.pretrain writes its model
    record = json.loads((tmp_path / "a" / "import.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert record["num_params"] == metrics["num_params"] == sum(p.numel() for p in model.parameters())
    assert record["dtype"] == "F32" and record["license"] == "apache-2.0"
    assert record["source_revision"].startswith("sha256:") and len(record["source_revision"]) == 71
    assert record["architecture"] == type(model).__name__
    tok = AutoTokenizer.from_pretrained(model_dir)
    original = AutoTokenizer.from_pretrained(hf_model_dirs[arch])
    assert tok.get_vocab() == original.get_vocab() and tok.chat_template == original.chat_template
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):  # byte for byte
        assert (model_dir / name).read_bytes() == (hf_model_dirs[arch] / name).read_bytes(), name
    with torch.no_grad():
        assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, model.config.vocab_size)


def test_the_revision_follows_the_content(tmp_path, user_dir):
    _import(tmp_path / "a", user_dir)
    cfg = json.loads((user_dir / "config.json").read_text())
    (user_dir / "config.json").write_text(json.dumps({**cfg, "rms_norm_eps": 1e-5}))
    _import(tmp_path / "b", user_dir)
    first, second = (json.loads((tmp_path / x / "import.json").read_text())["source_revision"] for x in "ab")
    assert first != second


def test_unsupported_architecture_names_the_supported_list(tmp_path, user_dir):
    cfg = json.loads((user_dir / "config.json").read_text())
    (user_dir / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPT2LMHeadModel"]}))
    message = _refused(tmp_path, user_dir, "GPT2LMHeadModel")
    assert "Qwen2ForCausalLM" in message and "MixtralForCausalLM" in message


def test_missing_tokenizer_is_refused(tmp_path, user_dir):
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (user_dir / name).unlink()
    _refused(tmp_path, user_dir, "tokenizer: none .*copy the tokenizer files")


def test_missing_chat_template_is_refused_unless_the_recipe_assigns_one(tmp_path, user_dir):
    (user_dir / "chat_template.jinja").unlink()
    _refused(tmp_path, user_dir, "chat template: the tokenizer has none.*set chat_template")
    _import(tmp_path / "ok", user_dir, chat_template="llmflow")
    from transformers import AutoTokenizer

    from components.tokenize.bpe import CHAT_TEMPLATE

    assert AutoTokenizer.from_pretrained(tmp_path / "ok" / "model").chat_template == CHAT_TEMPLATE
    assert json.loads((tmp_path / "ok" / "import.json").read_text())["chat_template"] == "recipe"


def test_pickle_only_weights_are_refused_unless_allowed_and_then_converted(tmp_path, user_dir):
    import torch
    from safetensors.torch import load_file

    state = load_file(user_dir / "model.safetensors")
    (user_dir / "model.safetensors").unlink()
    torch.save(state, user_dir / "pytorch_model.bin")
    _refused(tmp_path, user_dir, r"only pickled files \(pytorch_model.bin\).*allow_pickle: true")
    _import(tmp_path / "ok", user_dir, allow_pickle=True)
    written = sorted(p.name for p in (tmp_path / "ok" / "model").iterdir())
    assert "model.safetensors" in written and not any(n.endswith(".bin") for n in written)
    assert torch.equal(load_file(tmp_path / "ok" / "model" / "model.safetensors")["model.norm.weight"],
                       state["model.norm.weight"])


def test_remote_code_is_refused_unless_trusted_and_then_dropped(tmp_path, user_dir):
    cfg = json.loads((user_dir / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (user_dir / "config.json").write_text(json.dumps(cfg))
    (user_dir / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    _refused(tmp_path, user_dir, "auto_map.*trust_remote_code: true")
    _import(tmp_path / "ok", user_dir, trust_remote_code=True)
    assert "auto_map" not in json.loads((tmp_path / "ok" / "model" / "config.json").read_text())
    assert not (tmp_path / "ok" / "model" / "modeling_custom.py").exists()


def test_every_problem_is_listed_at_once(tmp_path, user_dir):
    cfg = json.loads((user_dir / "config.json").read_text())
    (user_dir / "config.json").write_text(json.dumps({**cfg, "architectures": ["FalconForCausalLM"],
                                                      "auto_map": {"AutoConfig": "x.Y"}}))
    (user_dir / "model.safetensors").unlink()
    message = _refused(tmp_path, user_dir, "3 problem")
    assert "FalconForCausalLM" in message and "auto_map" in message and "no *.safetensors" in message


def test_a_tokenizer_bigger_than_the_embedding_is_refused(tmp_path, user_dir):
    cfg = json.loads((user_dir / "config.json").read_text())
    (user_dir / "config.json").write_text(json.dumps({**cfg, "vocab_size": 1000}))
    _refused(tmp_path, user_dir, "tokenizer: 2049 tokens but config.json vocab_size is 1000")


def test_not_a_model_directory_and_a_revision_on_a_local_dir(tmp_path, user_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(tmp_path, empty, "not a Hugging Face model directory")
    _refused(tmp_path, user_dir, "revision='main' is for hub ids", revision="main")


def test_a_hub_id_that_cannot_be_fetched_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))  # an empty cache
    with pytest.raises(ValueError, match="hf download llmflow-test/absent --local-dir"):
        _import(tmp_path / "a", "llmflow-test/absent")
    assert not (tmp_path / "a" / "model").exists()


def test_a_hub_id_resolves_through_the_hugging_face_cache(tmp_path, monkeypatch, hf_model_dirs):
    """A hub id offline: the standard cache layout (models--org--name/refs/main → snapshots/<commit>) is what
    snapshot_download reads; the commit becomes the recorded source revision."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--llmflow-test--tiny-qwen2"
    shutil.copytree(hf_model_dirs["qwen2"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    _import(tmp_path / "a", "llmflow-test/tiny-qwen2")
    record = json.loads((tmp_path / "a" / "import.json").read_text())
    assert record["source"] == "llmflow-test/tiny-qwen2" and record["source_revision"] == commit
    assert record["architecture"] == "Qwen2ForCausalLM" and (tmp_path / "a" / "model" / "model.safetensors").is_file()
