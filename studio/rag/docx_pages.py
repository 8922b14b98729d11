"""Word (.docx) files as pages: the text of every paragraph and table cell, in reading order, cut where
Word put a page break.

A .docx has no fixed pages; Word lays them out when it opens the file. Two markers still say where
pages began: explicit page breaks the author inserted, and the `lastRenderedPageBreak` marks Word
writes on saving, at each page start of its last layout. Cutting on both gives the page numbers a
reader of the same file in Word sees; a file written by other software without those marks is one
page per explicit break (one page if it has none).
"""
from __future__ import annotations

import io

from studio.errors import StudioError

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def docx_texts(data: bytes, name: str, field: str) -> list[str]:
    """The pages of the .docx in `data`, each the text of its paragraphs separated by blank lines."""
    try:
        import docx
    except ImportError:
        raise StudioError(f"'{name}' is a Word file and python-docx is not installed; install it with "
                          "`pip install python-docx` or save the file as PDF.", field=field,
                          key="rag.parse.no_docx", file=name) from None
    try:
        body = docx.Document(io.BytesIO(data)).element.body
    except Exception as exc:  # noqa: BLE001 - zip, XML or package errors all mean the same to the user
        raise StudioError(f"'{name}' could not be read as a Word file ({exc}); open it in Word and save it "
                          "again as .docx, or as PDF.", field=field, key="rag.parse.corrupt_docx", file=name,
                          error=str(exc)) from None
    pages: list[list[str]] = [[]]
    line: list[str] = []

    def end_paragraph() -> None:
        text = "".join(line).strip()
        if text:
            pages[-1].append(text)
        line.clear()

    def new_page() -> None:
        end_paragraph()
        if pages[-1]:
            pages.append([])

    for element in body.iter():
        tag = element.tag
        if tag == f"{W}p":
            end_paragraph()
        elif tag == f"{W}t":
            line.append(element.text or "")
        elif tag == f"{W}tab":
            line.append("\t")
        elif tag in (f"{W}br", f"{W}cr"):
            if element.get(f"{W}type") == "page":
                new_page()
            else:
                line.append("\n")
        elif tag == f"{W}lastRenderedPageBreak":
            new_page()
    end_paragraph()
    return ["\n\n".join(page) for page in pages]
