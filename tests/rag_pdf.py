"""The PDF writer tests use; it lives in studio.rag.pdfwriter, which also builds the sample documents."""
from studio.rag.pdfwriter import make_pdf  # noqa: F401
