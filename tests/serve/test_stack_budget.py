"""How the router learns the served model's tokenizer and context: endpoint.json → serve.rag's RouterConfig."""
import pytest

from components.artifacts import Endpoint
from serve.llm.app import endpoint_info
from serve.llm.config import LLMServeConfig, ServeAppConfig
from serve.router.config import RouterConfig
from serve.steps.stack_config import RagServeConfig
from serve.steps.stack import _budget_from


def test_endpoint_json_carries_what_the_router_counts_with():
    info = endpoint_info(ServeAppConfig(llm=LLMServeConfig(model="/m/model", max_model_len=1024)))
    assert info["tokenizer"] == "/m/model" and info["max_model_len"] == 1024
    info = endpoint_info(ServeAppConfig(llm=LLMServeConfig(model="/m/model", engine_kwargs={"tokenizer": "/m/tok"})))
    assert info["tokenizer"] == "/m/tok"  # vLLM counts with --tokenizer when one is given


def _llm_endpoint(**fields) -> Endpoint:
    return Endpoint(served="llm", url="http://x/v1", health_url="http://x/health", app_name="llm",
                    deployment="LLMServer", model="llmflow", **fields)


def test_serve_rag_takes_them_from_the_endpoint_unless_the_recipe_sets_them():
    llm = _llm_endpoint(tokenizer="/m/model", max_model_len=512)
    assert _budget_from(llm, RagServeConfig().router) == {"tokenizer": "/m/model", "max_model_len": 512}
    off = RagServeConfig.model_validate({"router": {"tokenizer": None, "max_model_len": None}}).router
    assert _budget_from(llm, off) == {}  # budgeting turned off on purpose
    mine = RouterConfig(tokenizer="/other", max_model_len=256)
    assert _budget_from(llm, mine) == {}
    with pytest.raises(ValueError, match=r"lacks \['tokenizer', 'max_model_len'\].*rerun serve.deploy"):
        _budget_from(_llm_endpoint(), RagServeConfig().router)
