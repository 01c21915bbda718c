"""The post-training kinds are registered, their configs validate with defaults, and declaring them is light."""
import subprocess
import sys

KINDS = {"sft.dataset": ("docs",), "sft.lora": ("model", "data"), "rl.grpo": ("model", "data", "adapter?"),
         "rl.dpo": ("model", "prefs", "adapter?"), "rl.reward_model": ("model", "prefs"),
         "distill.draft": ("model", "tokens")}


def test_kinds_registered_with_contract_inputs():
    from flows.engine import registry

    for name, inputs in KINDS.items():
        kind = registry.get(name)
        assert kind.inputs == inputs
        kind.config_model()()  # tiny-CPU defaults validate
    assert registry.get("sft.lora").num_cpus == 0  # it only drives Ray Train workers


def test_kinds_and_configs_import_nothing_heavy():
    code = ("import sys; from flows.engine import registry; "
            f"[registry.get(n).config_model() for n in {list(KINDS)!r}]; "
            "print(sorted(m for m in ('torch', 'ray', 'vllm', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
