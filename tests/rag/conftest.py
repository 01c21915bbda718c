"""RAG fixtures (defined in tests/rag/fixtures.py so the router tests can import them too)."""
from tests.rag.fixtures import docs_writer, rag_docs, rag_docs_dir, rag_index_dir  # noqa: F401
