"""Write a tiny random-init Qwen2 as a Hugging Face directory, to try `llmflow run finetune` without a model.

    .venv/bin/python scripts/tiny_hf_model.py my-model        # then: .venv/bin/llmflow run finetune

What a user would bring, only tiny and untrained: config.json, model.safetensors, a byte-level BPE trained on
the stdlib docs (2,048 tokens) with a ChatML-style chat template, and a model card with a license. Its answers
are noise; every step runs on it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

CHATML = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end_of_text|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the directory to write (must not exist)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers")
    parser.add_argument("--width", type=int, default=128, help="hidden size (heads of 32)")
    args = parser.parse_args()

    import tempfile
    from pydoc_data.topics import topics

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from components.tokenize.bpe import train_bpe_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok = train_bpe_tokenizer([topics[k] for k in sorted(topics)], vocab_size=2048, out_dir=tmp)
    tok.chat_template = CHATML
    cfg = AutoConfig.for_model("qwen2", vocab_size=(len(tok) + 64) // 64 * 64, hidden_size=args.width,
                               intermediate_size=2 * args.width, num_hidden_layers=args.layers,
                               num_attention_heads=args.width // 32, num_key_value_heads=max(1, args.width // 64),
                               head_dim=32, max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    args.out.mkdir(parents=True)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(args.out, safe_serialization=True)
    tok.save_pretrained(args.out)
    (args.out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny random Qwen2 (scripts/tiny_hf_model.py)\n")
    print(f"wrote {args.out}: {sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(args.out).parameters()):,} "
          "parameters")


if __name__ == "__main__":
    main()
