"""Documents, chunks and embeddings live here (see PRODUCT.md F-KNW)."""
