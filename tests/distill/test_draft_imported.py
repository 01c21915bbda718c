"""Drafts for imported targets: the target's own architecture cut to a few layers (a true layer-drop init) with
the target's tokenizer; a draft with another vocabulary is refused before serving. (distill.draft on Ray Train
from an imported Qwen2 runs in tests/serve/test_byom_chain.py, which serves the draft.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from components.models.compat import DraftMismatchError, check_draft


@pytest.mark.parametrize("arch", ["qwen2", "mistral", "qwen2_moe"])
def test_layer_drop_init_copies_the_first_layers_of_the_targets_own_architecture(hf_model_dirs, arch):
    import torch
    from transformers import AutoModelForCausalLM

    from components.distill.config import DraftDistillConfig
    from components.distill.draft import draft_config, init_from_target, new_draft

    target = AutoModelForCausalLM.from_pretrained(hf_model_dirs[arch])
    draft = new_draft(draft_config(target.config, DraftDistillConfig(depth=1, architecture="target",
                                                                     init_from_target=True)))
    init_from_target(draft, target)
    assert type(draft) is type(target) and draft.config.num_hidden_layers == 1
    source = target.state_dict()
    for name, tensor in draft.state_dict().items():  # every tensor: embeddings, layer 0, norm, head
        assert torch.equal(tensor, source[name]), name


def test_a_draft_cannot_be_deeper_than_its_target(hf_model_dirs):
    from transformers import AutoConfig

    from components.distill.config import DraftDistillConfig
    from components.distill.draft import draft_config

    with pytest.raises(ValueError, match="exceeds the target's 2 layers"):
        draft_config(AutoConfig.from_pretrained(hf_model_dirs["qwen2"]), DraftDistillConfig(depth=3, architecture="target"))


@pytest.fixture(scope="module")
def other_tokenizer_model(tmp_path_factory, stdlib_texts) -> Path:
    """A Qwen2 of the same shape and vocabulary size whose tokenizer was trained on other text: other ids."""
    from components.tokenize.bpe import train_bpe_tokenizer
    from tests.fixtures.hf_models import build_hf_model

    base = tmp_path_factory.mktemp("other_tok")
    train_bpe_tokenizer(stdlib_texts[::-1][:20], vocab_size=2048, out_dir=base / "tok")
    return build_hf_model(base / "model", "qwen2", base / "tok")


def test_a_draft_with_another_tokenizer_is_refused(hf_model_dirs, other_tokenizer_model):
    check_draft(hf_model_dirs["qwen2"], hf_model_dirs["qwen2_moe"])  # another architecture, same tokenizer: fine
    with pytest.raises(DraftMismatchError, match="another tokenizer than its target.*distill.draft"):
        check_draft(hf_model_dirs["qwen2"], other_tokenizer_model)


def test_a_draft_with_another_vocab_size_is_refused(tmp_path, hf_model_dirs):
    draft = Path(shutil.copytree(hf_model_dirs["qwen2"], tmp_path / "draft"))
    cfg = json.loads((draft / "config.json").read_text())
    (draft / "config.json").write_text(json.dumps({**cfg, "vocab_size": 4096}))
    with pytest.raises(DraftMismatchError, match="vocab_size 4096, its target .* has 2112"):
        check_draft(hf_model_dirs["qwen2"], draft)


def test_serve_deploy_refuses_the_mismatched_draft_before_starting(hf_model_dirs, other_tokenizer_model):
    from serve.llm.config import ServeDeployConfig
    from serve.steps.deploy import app_config_from_inputs

    with pytest.raises(DraftMismatchError, match="another tokenizer"):
        app_config_from_inputs(ServeDeployConfig(), {"model": hf_model_dirs["qwen2"], "draft": other_tokenizer_model})
