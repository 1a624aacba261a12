"""embedding: all-MiniLM-L6-v2 sentence embeddings (its declaration in spec.py, the work in core.py)."""
