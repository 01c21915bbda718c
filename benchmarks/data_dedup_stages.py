"""Wall time and driver peak RSS after each stage of ``dedup_ray.dedup_removals`` (each stage waited for).

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/data_dedup_stages.py /tmp/llmflow-datascale/corpus-100mb

Runs the same Ray task waves as ``data.dedup`` on a local Ray (4 logical CPUs), waiting for each wave
before starting the next so its time is its own (in the step they overlap): where the step's time and
the driver's memory go.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    import numpy as np
    import ray
    import ray.data

    import components.data.dedup_ray as dr
    from components.artifacts import Docs
    from components.data.config import DedupConfig
    from components.data.shards import docs_blocks

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    config = DedupConfig()
    parts = config.num_partitions
    last = time.perf_counter()

    def mark(name, refs, rows=None):
        nonlocal last
        ray.wait(refs, num_returns=len(refs), fetch_local=False)
        now = time.perf_counter()
        print(f"{name:10s} {now - last:7.2f} s  objects={len(refs):>5}  rows={rows if rows is not None else '-':>8}  "
              f"driver peak RSS={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
        last = now

    block_refs, block_rows = docs_blocks(Docs.read(sys.argv[1]), config.batch_size, row_numbers=True)
    mark("read", block_refs, sum(block_rows))
    keys = ray.remote(dr.keys_block).options(num_returns=2)
    key_outs = [keys.remote(ref, config.model_dump_json()) for ref in block_refs]
    mark("keys", [r for k in key_outs for r in k])
    pairs = ray.remote(dr.pairs_partition).options(num_returns=parts)
    pair_outs = [pairs.remote(p, parts, *(k[0] for k in key_outs)) for p in range(parts)]
    pair_outs = [[r] for r in pair_outs] if parts == 1 else pair_outs
    mark("pairs", [r for po in pair_outs for r in po])
    verify = ray.remote(dr.verify_partition)
    starts = np.cumsum([0, *block_rows])[:-1]
    edge_refs = [verify.remote(config.threshold, starts, [k[1] for k in key_outs], *(po[p] for po in pair_outs))
                 for p in range(parts)]
    mark("verify", edge_refs)
    t = time.perf_counter()
    parent = dr.component_parents(edge_refs, sum(block_rows))
    print(f"union-find {time.perf_counter() - t:7.2f} s", flush=True)
    t = time.perf_counter()
    chunks = dr.decide(edge_refs, [ray.put(parent)], config)
    n = sum(1 for _ in dr.sorted_report_rows(chunks))
    print(f"decide     {time.perf_counter() - t:7.2f} s  rows={n:>8}  "
          f"driver peak RSS={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
