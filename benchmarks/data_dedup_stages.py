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
    from components.data.shards import docs_dataset, ordered_execution

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
        docs = mark("read", docs_dataset(Docs.read(sys.argv[1]), config.batch_size).select_columns(["id", "text"]))
        keys = mark("keys", docs.map_batches(dr.bucket_batch, fn_kwargs={"config_json": config.model_dump_json()},
                                             batch_format="pyarrow", batch_size=config.batch_size))
        pairs = mark("pairs", dr._groupby(keys, ["bucket", "kind"], dr.bucket_pairs, config))
        cand = mark("cand", docs.map_batches(dr.candidate_docs, fn_kwargs={"id_refs": dr.arrow_refs(pairs)},
                                             batch_format="pyarrow", batch_size=config.batch_size))
        probes = mark("probes", dr._groupby(cand.union(pairs.map_batches(dr.pair_rows, batch_format="pyarrow")),
                                            "key", dr.send_shingles, config, ngram=config.ngram))
        edges = mark("verify", dr._groupby(cand.union(probes), "key", dr.verify, config, ngram=config.ngram,
                                           threshold=config.threshold))
        state = mark("components", dr.component_labels(edges, config))
        labelled = mark("label", dr._groupby(state.map_batches(dr.state_rows, batch_format="pyarrow").union(
            edges.map_batches(dr.edge_rows, batch_format="pyarrow")), "key", dr.label_edges, config))
        removed = mark("decide", dr._groupby(labelled, "label", dr.decide_component, config))
        mark("clusters", dr._groupby(removed, "rep", dr.cluster_row, config).sort(["neg_size", "survivor"]))
    ray.shutdown()


if __name__ == "__main__":
    main()
