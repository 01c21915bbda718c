"""Check a Hugging Face model directory against what llmflow can train and serve, then copy it into an artifact.

``inspect_model(dir, config)`` reads only small files (config.json, the tokenizer, safetensors headers)
and raises one ``ImportRefused`` listing every problem, each with its fix, before any weight is read or
anything is written. ``write_model`` then writes ``<out>/model/`` (the layout of ``train.pretrain``'s
artifact) and ``<out>/import.json`` (what was imported, from where, at which revision).

    found = inspect_model(Path("my-qwen"), ImportConfig(source="my-qwen"))
    write_model(found, ImportConfig(source="my-qwen"), Path("artifact"))
"""
from __future__ import annotations

import hashlib
import json
import shutil
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from components.models import architectures
from components.models.compat import copy_tokenizer_files
from components.models.import_config import LLMFLOW_TEMPLATE, ImportConfig

PICKLE_PATTERNS = ("pytorch_model*.bin", "*.pt", "*.pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
# Copied beside the weights as they are: generation defaults and the model's terms of use.
KEPT_FILES = ("generation_config.json", "LICENSE", "LICENSE.md", "LICENSE.txt", "README.md", "NOTICE")
PROBE_CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]


class ImportRefused(ValueError):
    """A model ``models.import`` will not import; the message lists every problem and its fix."""


@dataclass
class Found:
    """What ``inspect_model`` read from a model directory that passed every check."""

    dir: Path
    config: dict
    architecture: str
    safetensors: list[Path]
    pickled: list[Path]
    tokenizer: object
    chat_template_source: str  # "model" or "recipe"
    license: str
    num_params: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)  # safetensors dtype -> parameters stored in it

    @property
    def dtype(self) -> str:
        """The dtype most parameters are stored in (as safetensors names it: F32, BF16, …)."""
        return max(self.dtypes, key=self.dtypes.get) if self.dtypes else str(self.config.get("torch_dtype"))


def inspect_model(model_dir: Path, config: ImportConfig, check_weights: bool = True) -> Found:
    """Every check, before anything heavy: raises ``ImportRefused`` naming each problem and its fix.
    ``check_weights=False``: the weights are not downloaded yet (a hub source's first round)."""
    where = f"models.import source {config.source!r}"
    if not (model_dir / "config.json").is_file():
        present = sorted(p.name for p in model_dir.iterdir())[:10] if model_dir.is_dir() else "nothing"
        raise ImportRefused(f"{where}: {model_dir} is not a Hugging Face model directory (no config.json; it holds "
                            f"{present}); point source at the folder that holds config.json and the weights")
    model_config = json.loads((model_dir / "config.json").read_text())
    problems: list[str] = []
    architecture = architectures.architecture_of(model_config)
    try:
        architectures.get(architecture)
    except architectures.UnsupportedArchitectureError as e:
        problems.append(f"config.json: {e}")
    if model_config.get("auto_map") and not config.trust_remote_code:
        problems.append(f"config.json has an auto_map ({sorted(model_config['auto_map'])}): the model asks to run "
                        "its repository's own Python code; set trust_remote_code: true to import it anyway "
                        f"(llmflow then uses the native {architecture} implementation and copies no *.py)")
    safetensors = sorted(model_dir.glob("*.safetensors"))
    pickled = sorted({p for pattern in PICKLE_PATTERNS for p in model_dir.glob(pattern)})
    if check_weights and not safetensors and pickled and not config.allow_pickle:
        problems.append(f"weights: only pickled files ({', '.join(p.name for p in pickled)}), which can run code "
                        "when loaded; convert them to safetensors (model.save_pretrained(dir, "
                        "safe_serialization=True)) or set allow_pickle: true to have the import convert them")
    elif check_weights and not safetensors and not pickled:
        problems.append(f"weights: no *.safetensors in {model_dir}; copy the model's weight files there")
    tokenizer, template_source = _tokenizer(model_dir, config, problems)
    if tokenizer is not None and len(tokenizer) > model_config.get("vocab_size", 0):
        problems.append(f"tokenizer: {len(tokenizer)} tokens but config.json vocab_size is "
                        f"{model_config.get('vocab_size')}; the tokenizer belongs to another model")
    if problems:
        raise ImportRefused(f"{where} ({model_dir}) cannot be imported, {len(problems)} problem(s):\n  "
                            + "\n  ".join(problems))
    found = Found(model_dir, model_config, architecture, safetensors, pickled, tokenizer, template_source,
                  config.license or _card_license(model_dir))
    if safetensors:
        found.num_params, found.dtypes = safetensors_stats(safetensors)
    return found


def _tokenizer(model_dir: Path, config: ImportConfig, problems: list[str]):
    """The model's tokenizer with the chat template it will carry, or None with a problem recorded."""
    from transformers import AutoTokenizer

    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"tokenizer: none in {model_dir} (no {', '.join(TOKENIZER_FILES)}); copy the tokenizer "
                        "files of the model (tokenizer.json and tokenizer_config.json) into it")
        return None, ""
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - any failure to load is the same problem for the user
        problems.append(f"tokenizer: transformers cannot load it without remote code ({type(e).__name__}: "
                        f"{str(e)[:200]}); provide a tokenizer.json")
        return None, ""
    source = "model"
    if config.chat_template:
        from components.tokenize.bpe import CHAT_TEMPLATE

        tokenizer.chat_template = CHAT_TEMPLATE if config.chat_template == LLMFLOW_TEMPLATE else config.chat_template
        source = "recipe"
    if not tokenizer.chat_template:
        problems.append("chat template: the tokenizer has none (no chat_template in tokenizer_config.json, no "
                        "chat_template.jinja); set chat_template in the step's config (a Jinja template, or "
                        f"'{LLMFLOW_TEMPLATE}' for llmflow's own) — a base model needs one before SFT")
        return None, ""
    try:
        tokenizer.apply_chat_template(PROBE_CHAT, tokenize=False)
    except Exception as e:  # noqa: BLE001
        problems.append(f"chat template ({source}): rendering a user/assistant exchange failed ({type(e).__name__}: "
                        f"{str(e)[:200]}); fix the template or assign one with chat_template")
        return None, ""
    return tokenizer, source


def _card_license(model_dir: Path) -> str:
    """``license:`` from the model card's YAML front matter (README.md), else 'unknown'."""
    card = model_dir / "README.md"
    if card.is_file():
        lines = card.read_text(errors="replace").splitlines()
        if lines and lines[0].strip() == "---":
            for line in lines[1:]:
                if line.strip() == "---":
                    break
                if line.startswith("license:"):
                    return line.split(":", 1)[1].strip().strip("'\"") or "unknown"
    return "unknown"


def safetensors_header(path: Path) -> dict:
    """A safetensors file's JSON header (tensor name -> dtype, shape, offsets): its first 8 + N bytes."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def safetensors_stats(paths: list[Path]) -> tuple[int, dict[str, int]]:
    """(parameter count, parameters per dtype) from the headers alone: no tensor is read."""
    total, by_dtype = 0, Counter()
    for path in paths:
        for name, meta in safetensors_header(path).items():
            if name == "__metadata__":
                continue
            n = 1
            for dim in meta["shape"]:
                n *= dim
            total += n
            by_dtype[meta["dtype"]] += n
    return total, dict(by_dtype)


def content_revision(found: Found) -> str:
    """A local source's revision: sha256 of config.json, the tokenizer files and the weights' headers and
    sizes (a changed tensor changes its size or offsets in every case but an in-place byte edit)."""
    h = hashlib.sha256()
    files = [found.dir / "config.json", *(found.dir / n for n in TOKENIZER_FILES)]
    for path in files:
        if path.is_file():
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    for path in found.safetensors or found.pickled:
        h.update(path.name.encode() + b"\0" + str(path.stat().st_size).encode())
        if path.suffix == ".safetensors":
            h.update(json.dumps(safetensors_header(path), sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def write_model(found: Found, config: ImportConfig, out: Path, revision: str) -> dict:
    """Write ``<out>/model`` (safetensors, config, tokenizer with its chat template) and ``<out>/import.json``."""
    model_out = out / "model"
    model_out.mkdir(parents=True)
    if found.safetensors:
        for path in found.safetensors:
            shutil.copy2(path, model_out / path.name)
        index = found.dir / "model.safetensors.index.json"
        if index.is_file():
            shutil.copy2(index, model_out / index.name)
        model_config = {k: v for k, v in found.config.items() if k != "auto_map"}
        (model_out / "config.json").write_text(json.dumps(model_config, indent=2))
    else:  # allow_pickle: unpickle once, with torch's weights_only loader, and keep only safetensors
        found.num_params, found.dtypes = _convert_pickled(found, model_out)
    for name in KEPT_FILES:
        if (found.dir / name).is_file():
            shutil.copy2(found.dir / name, model_out / name)
    _copy_tokenizer(found, model_out)
    record = {"source": config.source, "source_dir": str(found.dir), "source_revision": revision,
              "architecture": found.architecture, "model_type": found.config.get("model_type"),
              "dtype": found.dtype, "num_params": found.num_params, "dtypes": found.dtypes,
              "license": found.license, "chat_template": found.chat_template_source,
              "converted_from_pickle": not found.safetensors, "remote_code_dropped": bool(found.config.get("auto_map")),
              "lora_targets": architectures.lora_targets(found.config), "vocab_size": found.config.get("vocab_size"),
              "tokenizer_size": len(found.tokenizer)}
    (out / "import.json").write_text(json.dumps(record, indent=2))
    return record


def _copy_tokenizer(found: Found, model_out: Path) -> None:
    """The tokenizer files as they are; a template the recipe assigned replaces the model's own."""
    copy_tokenizer_files(found.dir, model_out)
    if found.chat_template_source == "recipe":
        (model_out / "chat_template.json").unlink(missing_ok=True)
        (model_out / "chat_template.jinja").write_text(found.tokenizer.chat_template)
        config_path = model_out / "tokenizer_config.json"
        if config_path.is_file():
            tokenizer_config = json.loads(config_path.read_text())
            tokenizer_config.pop("chat_template", None)
            config_path.write_text(json.dumps(tokenizer_config, indent=2))


def _convert_pickled(found: Found, model_out: Path) -> tuple[int, dict[str, int]]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(found.dir, use_safetensors=False, trust_remote_code=False)
    model.save_pretrained(model_out, safe_serialization=True)
    model_config = json.loads((model_out / "config.json").read_text())
    model_config.pop("auto_map", None)
    (model_out / "config.json").write_text(json.dumps(model_config, indent=2))
    return safetensors_stats(sorted(model_out.glob("*.safetensors")))
