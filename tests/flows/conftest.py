from __future__ import annotations

import pytest

from tests.flows.kinds_for_tests import ensure_registered

ensure_registered()

DIAMOND = {
    "name": "diamond",
    "steps": {
        "a": {"uses": "test.emit", "config": {"value": 1}},
        "b": {"uses": "test.emit", "config": {"value": 10}},
        "left": {"uses": "test.add", "needs": {"a": "a"}, "config": {"offset": 100}},
        "right": {"uses": "test.add", "needs": {"a": "b"}, "config": {"offset": 1000}},
        "join": {"uses": "test.add", "needs": {"a": "left", "b": "right"}, "config": {}},
    },
}


@pytest.fixture
def diamond():
    import copy

    return copy.deepcopy(DIAMOND)
