"""Config of the ``models.import`` step: where a Hugging Face model comes from and what it may do."""
from __future__ import annotations

from pydantic import Field, field_validator

from components.config import Config

# ``chat_template: llmflow`` assigns the template llmflow's own tokenizers carry (components.tokenize.bpe).
LLMFLOW_TEMPLATE = "llmflow"
# A small public instruct model (494M parameters, Apache-2.0, safetensors, chat template, Qwen2ForCausalLM),
# the kind of model TRL's examples start from; recipes set their own source.
DEFAULT_SOURCE = "Qwen/Qwen2.5-0.5B-Instruct"


class ImportConfig(Config):
    """Import a causal LM as a model artifact (the same ``model/`` layout ``train.pretrain`` writes)."""

    source: str = Field(DEFAULT_SOURCE, description=(
        "A local Hugging Face model directory (config.json, *.safetensors, tokenizer files), or a hub id such as "
        "'Qwen/Qwen2.5-0.5B-Instruct', fetched through the standard Hugging Face cache (HF_HOME); with "
        "HF_HUB_OFFLINE=1 only what the cache already holds. A local directory is addressed by its path: after "
        "changing its files, run with `--force` on this step."))
    revision: str | None = Field(None, description=(
        "Hub only: the branch, tag or commit to fetch (None: the default branch). The commit actually fetched "
        "is recorded as the model's source revision; pin a commit for a reproducible flow."))
    allow_pickle: bool = Field(False, description=(
        "Accept pickled PyTorch weights (*.bin, *.pt) when the source has no *.safetensors. Unpickling can run "
        "arbitrary code, so it is off; when on, the weights are loaded once (torch weights_only) and written "
        "as safetensors, so no later step unpickles anything."))
    trust_remote_code: bool = Field(False, description=(
        "Accept a config.json whose auto_map asks for the repository's own Python code. Even then llmflow "
        "loads the model with transformers' and vLLM's native implementation of its architecture (the remote "
        "*.py files are not copied); refused while false, since such code runs on every worker."))
    chat_template: str | None = Field(None, description=(
        "Assign a chat template: a Jinja template, or 'llmflow' for llmflow's own (which marks assistant turns "
        "with {% generation %}). None: keep the model's; a model without one is refused (SFT, GRPO, eval and "
        "the chat endpoint all format turns with it)."))
    license: str | None = Field(None, description=(
        "The model's license, recorded in MLflow (None: read `license:` from the model card's front matter; "
        "'unknown' when it has none)."))

    @field_validator("source")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("source is empty: give a local model directory or a hub id such as 'org/name'")
        return v.strip()
