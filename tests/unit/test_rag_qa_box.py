"""The review table of pairs written from documents: what the person kept and edited comes back as pairs."""
from __future__ import annotations

import pandas as pd

from studio.ui.i18n import Texts
from studio.ui.rag_qa_box import kept_pairs, pairs_table, relabelled

PAIRS = [{"question": "How often?", "answer": "Every 300 km.", "file": "bikes.pdf", "page": 2, "grounded": True},
         {"question": "What about the moon?", "answer": "Cheese.", "file": "bikes.pdf", "page": 1, "grounded": False}]


def test_ungrounded_rows_start_unticked_and_edits_come_back():
    texts = Texts.load()
    table = pairs_table(PAIRS, texts, "es")
    assert table["headers"][:3] == ["conservar", "pregunta", "respuesta"]
    assert [row[0] for row in table["data"]] == [True, False]
    edited = pd.DataFrame(table["data"], columns=table["headers"])
    edited.iloc[0, 2] = "Cada 300 km."
    assert kept_pairs(edited) == [{"question": "How often?", "answer": "Cada 300 km.", "file": "bikes.pdf", "page": 2}]
    edited.iloc[1, 0] = True
    assert len(kept_pairs(edited)) == 2


def test_the_language_switch_relabels_the_headers_and_keeps_the_edited_rows():
    texts = Texts.load()
    table = pairs_table(PAIRS, texts, "en")
    edited = pd.DataFrame(table["data"], columns=table["headers"])
    edited.iloc[0, 2] = "Cada 300 km."
    spanish = relabelled(edited, texts, "es")
    assert spanish["headers"][:3] == ["conservar", "pregunta", "respuesta"]
    assert spanish["data"][0][2] == "Cada 300 km." and len(spanish["data"]) == 2
    assert relabelled(spanish, texts, "en")["headers"] == table["headers"]
