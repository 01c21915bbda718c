"""Retrieval-augmented generation: chunking, embedding, a Qdrant index, hybrid search, evaluation.

Light on import: heavy libraries (sentence-transformers, Ray, qdrant-client) load inside the
functions that need them, so recipes validate without them.
"""
