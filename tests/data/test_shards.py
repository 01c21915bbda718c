"""Unit tests of components/data/shards.py helpers that need no Ray cluster."""
from __future__ import annotations

import json

from components.data.shards import writer_node, writer_node_tags


def test_writer_node_tags_list_each_node_once_sorted_with_its_block_count():
    tags = writer_node_tags(["n2", "n1", "n2", "n3", "n2"], blocks_sent_back=2)
    assert tags["llmflow.data.writer_nodes"] == "n1,n2,n3"
    assert json.loads(tags["llmflow.data.blocks_by_node"]) == {"n1": 1, "n2": 3, "n3": 1}
    assert list(json.loads(tags["llmflow.data.blocks_by_node"])) == ["n1", "n2", "n3"]  # same order every run
    assert tags["llmflow.data.blocks_sent_back"] == "2"


def test_writer_node_tags_of_no_block_are_empty_not_missing():
    assert writer_node_tags([], 0) == {"llmflow.data.writer_nodes": "", "llmflow.data.blocks_by_node": "{}",
                                       "llmflow.data.blocks_sent_back": "0"}


def test_writer_node_outside_ray_is_local():
    import ray

    if ray.is_initialized():  # another test of this process started Ray: its node is what writers report
        assert writer_node() == ray.get_runtime_context().get_node_id()
    else:
        assert writer_node() == "local"
