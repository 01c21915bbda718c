"""Settings of the session's live LLM app (started by tests/serve/conftest.py), for tests that talk to it
without the ``client`` fixture: its Serve app name and API key."""
from __future__ import annotations

HTTP_PORT = 18000
APP_NAME = "llmflow-llm-test"
API_KEY_ENV = "LLMFLOW_TEST_API_KEY"
API_KEY = "test-key-123"
