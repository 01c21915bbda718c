"""Named points on the depth dial, in a module of its own: the light config validates names with
it and the presets (which import transformers) build from it, with neither importing the other."""
from __future__ import annotations

# Named points on the depth dial. ~params are for a 32k vocabulary, untied embeddings.
PRESETS: dict[str, int] = {
    "debug": 2,     # CPU tests: ~1M params at a 2k vocab (~8M at 32k)
    "tiny": 4,      # ~4M at 2k vocab
    "small": 8,     # ~30M + embeddings
    "base": 12,     # ~125M class (85M body + 49M embeddings at 32k)
    "medium": 20,   # ~350M class (393M body)
    "large": 28,    # ~1B class (1.08B body)
}
