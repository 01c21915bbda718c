"""Wall time and driver peak RSS after each stage of ``dedup_ray.dedup_removals`` (each stage materialized).

    flock /tmp/llmflow-heavy.lock .venv/bin/python benchmarks/data_dedup_stages.py /tmp/llmflow-datascale/corpus-100mb

Runs the same Ray Data stages as ``data.dedup`` on a local Ray (4 logical CPUs), materializing after
each so its time is its own: where the step's time and the driver's memory go.
"""
from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    import ray
    import ray.data

    import components.data.dedup_ray as dr
    from components.artifacts import Docs
    from components.data.config import DedupConfig
    from components.data.shards import ROW, docs_dataset, ordered_execution

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    config = DedupConfig()
    last = time.perf_counter()

    def mark(name, ds):
        nonlocal last
        ds = ds.materialize()
        now = time.perf_counter()
        print(f"{name:10s} {now - last:7.2f} s  rows={ds.count():>8}  "
              f"driver peak RSS={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
        last = now
        return ds

    with ordered_execution(config.shuffle_strategy):
        docs = mark("read", docs_dataset(Docs.read(sys.argv[1]), config.batch_size, row_numbers=True)
                    .select_columns(["id", "text", ROW]))
        keys = mark("keys", docs.map_batches(dr.bucket_batch, fn_kwargs={"config_json": config.model_dump_json()},
                                             batch_format="pyarrow", batch_size=config.batch_size))
        pairs = mark("pairs", dr._groupby(keys, ["bucket", "kind"], dr.bucket_pairs, config))
        pair_refs = dr.arrow_refs(pairs)
        probes = mark("probes", docs.map_batches(dr.probe_rows, fn_kwargs={"pair_refs": pair_refs,
                                                                           "ngram": config.ngram},
                                                 batch_format="pyarrow", batch_size=config.batch_size))
        edges = mark("verify", pairs.map_batches(dr.exact_edges, batch_format="pyarrow").union(
            dr._groupby(probes, "key", dr.verify, config, threshold=config.threshold)))
        t = time.perf_counter()
        parent_refs = [ray.put(dr.component_parents(dr.arrow_refs(edges), docs.count()))]
        print(f"union-find {time.perf_counter() - t:7.2f} s", flush=True)
        t = time.perf_counter()
        chunks = dr.decide(dr.arrow_refs(edges), parent_refs, config)
        n = sum(1 for _ in dr.sorted_report_rows(chunks))
        print(f"decide     {time.perf_counter() - t:7.2f} s  rows={n:>8}  "
              f"driver peak RSS={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
