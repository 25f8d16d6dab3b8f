"""Publication: the artifact written, its FAISS indexes, and which old versions are kept."""
