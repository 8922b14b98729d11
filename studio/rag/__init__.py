"""Chat over the user's documents (RAG): parse files with their page numbers, cut them into chunks the
embedder can read whole, index them in persistent Chroma collections, and retrieve them by meaning and
by words (dense + BM25, fused). Parsing is `parsing`, chunking `chunking`, the index `store`, retrieval
`retrieval`. This package never imports gradio.
"""
