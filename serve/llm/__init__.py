"""The LLM app: a vLLM engine per Ray Serve replica behind the OpenAI API (config, deployment, app builder)."""
