"""The semantic cache engine: embeddings, verification beyond cosine, and the in-memory index.

Pure Python (numpy, safetensors, tokenizers): no Django imports, so the proxy views, the Redis
tier and the database tier can all build on it.
"""
