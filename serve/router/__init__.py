"""The RAG router: an OpenAI chat ingress that retrieves, routes and cites in front of the LLM app."""
