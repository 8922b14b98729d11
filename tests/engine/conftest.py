"""Fixtures of the engine tests: the RAG corpus written to a temp folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.rag_fixtures import write_corpus


@pytest.fixture
def corpus(tmp_path) -> list[Path]:
    return write_corpus(tmp_path)
