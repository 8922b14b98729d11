"""Parsing keeps the page numbers a person would cite, and refuses unreadable files in one sentence.

PDFs are written here by `tests.rag_pdf.make_pdf` (no binary fixtures in the repository).
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from pypdf import PageObject, PdfReader
from pypdf.errors import DependencyError

from studio.errors import StudioError
from studio.rag import parsing
from studio.rag.parsing import page_ranges, read_document, tidy
from tests.conftest import ROOT
from tests.rag_pdf import make_pdf


SPANISH = {key: text for part in ("errors-rag.json", "errors-bounds.json")
           for key, text in json.loads((ROOT / "studio/locales/es" / part).read_text(encoding="utf-8")).items()}


def refusal(path, **kwargs) -> StudioError:
    """The StudioError that reading `path` raises, checked to point at the files field and to read in Spanish."""
    with pytest.raises(StudioError) as info:
        read_document(path, **kwargs)
    error = info.value
    assert error.field == "rag.files"
    assert SPANISH[f"error.{error.key}"].format(**error.params)
    return error


def test_every_parse_error_has_a_spanish_sentence():
    keys = re.findall(r'key="(rag\.parse\.\w+)"', Path(parsing.__file__).read_text(encoding="utf-8"))
    assert keys and all(f"error.{key}" in SPANISH for key in keys)


def test_pdf_keeps_page_numbers_and_text(tmp_path):
    path = make_pdf(tmp_path / "guide.pdf", ["Install (step one)\nthen run it", "Configure the\\path", "Año nuevo"])
    doc = read_document(path)
    assert doc.name == "guide.pdf" and doc.empty_pages == []
    assert [(p.number, p.text) for p in doc.pages] == [
        (1, "Install (step one)\nthen run it"), (2, "Configure the\\path"), (3, "Año nuevo")]


def test_page_without_text_is_kept_and_listed_as_empty(tmp_path):
    doc = read_document(make_pdf(tmp_path / "scan.pdf", ["cover", "", "", "back"]))
    assert [p.number for p in doc.pages] == [1, 2, 3, 4]
    assert doc.pages[1].text == "" and doc.empty_pages == [2, 3]


def test_upload_name_wins_over_temporary_path(tmp_path):
    path = make_pdf(tmp_path / "tmp123", ["hello"])
    doc = read_document(path, name="report.pdf")
    assert doc.name == "report.pdf" and doc.pages[0].text == "hello"


def test_same_bytes_give_same_sha256(tmp_path):
    a = make_pdf(tmp_path / "a.pdf", ["same"])
    b = tmp_path / "b.pdf"
    b.write_bytes(a.read_bytes())
    c = make_pdf(tmp_path / "c.pdf", ["other"])
    assert read_document(a).sha256 == read_document(b).sha256 != read_document(c).sha256


@pytest.mark.parametrize("numbers, expected", [
    ([3, 4, 5, 9], "3-5, 9"), ([1], "1"), ([], ""), ([9, 3, 4, 4, 5], "3-5, 9"), ([1, 3, 5], "1, 3, 5"),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9], "1-9")])
def test_page_ranges_reads_like_a_person_writes(numbers, expected):
    assert page_ranges(numbers) == expected


def test_tidy_strips_line_ends_but_keeps_paragraph_breaks():
    assert tidy("one  \r\ntwo\t\n\n\n\n  \nthree\n\n") == "one\ntwo\n\nthree"
    assert tidy(None) == "" and tidy(" \n \n") == ""
    assert tidy("  indented\n\nnext") == "  indented\n\nnext"


def test_text_file_pages_split_on_form_feeds(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("\ufeffFirst page\n\nSecond para  \fPage two\f\fPage four\f".encode("utf-8"))
    doc = read_document(path)
    assert [(p.number, p.text) for p in doc.pages] == [
        (1, "First page\n\nSecond para"), (2, "Page two"), (3, ""), (4, "Page four")]
    assert doc.empty_pages == [3]


def test_markdown_without_form_feeds_is_one_page(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("# Title\n\n\n\nBody text é\n", encoding="utf-8")
    doc = read_document(path)
    assert [(p.number, p.text) for p in doc.pages] == [(1, "# Title\n\nBody text é")]


def test_zero_byte_file_is_refused(tmp_path):
    (tmp_path / "empty.pdf").write_bytes(b"")
    error = refusal(tmp_path / "empty.pdf")
    assert error.key == "rag.parse.empty_file" and error.params == {"file": "empty.pdf"}
    assert "'empty.pdf'" in error.message


def test_file_named_pdf_that_is_not_a_pdf_is_refused(tmp_path):
    path = tmp_path / "letter.pdf"
    path.write_bytes(b"PK\x03\x04 this is a zip, really" * 10)
    error = refusal(path)
    assert error.key == "rag.parse.not_pdf" and "letter.pdf" in error.message


def test_pdf_header_after_junk_within_1024_bytes_is_accepted(tmp_path):
    path = tmp_path / "mail.pdf"
    path.write_bytes(b"\x00" * 100 + make_pdf(tmp_path / "inner.pdf", ["still text"]).read_bytes())
    assert read_document(path).pages[0].text == "still text"


@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],
    lambda data: b"%PDF-1.4\nnothing else here\n",
    lambda data: data.replace(b"startxref", b"startxxxx"),
], ids=["truncated", "header-only", "no-startxref"])
def test_corrupt_pdf_is_refused(tmp_path, damage):
    path = tmp_path / "broken.pdf"
    path.write_bytes(damage(make_pdf(tmp_path / "good.pdf", ["alpha", "beta"]).read_bytes()))
    error = refusal(path)
    assert error.key in ("rag.parse.corrupt", "rag.parse.corrupt_page")
    assert error.params["file"] == "broken.pdf" and error.params["error"]


def test_encrypted_pdf_without_password_asks_for_it(tmp_path):
    path = make_pdf(tmp_path / "secret.pdf", ["classified"], password="s3cret")
    error = refusal(path)
    assert error.key == "rag.parse.needs_password" and error.params == {"file": "secret.pdf"}
    assert error.message == "'secret.pdf' is password-protected; give its password."


def test_encrypted_pdf_with_wrong_password_is_refused(tmp_path):
    path = make_pdf(tmp_path / "secret.pdf", ["classified"], password="s3cret")
    assert refusal(path, password="guess").key == "rag.parse.wrong_password"


def test_encrypted_pdf_with_right_password_opens(tmp_path):
    path = make_pdf(tmp_path / "secret.pdf", ["classified", "more"], password="s3cret")
    assert [p.text for p in read_document(path, password="s3cret").pages] == ["classified", "more"]


def test_password_for_plain_pdf_is_ignored(tmp_path):
    assert read_document(make_pdf(tmp_path / "open.pdf", ["open"]), password="x").pages[0].text == "open"


def test_encryption_needing_missing_crypto_package_is_refused(tmp_path, monkeypatch):
    path = make_pdf(tmp_path / "aes.pdf", ["classified"], password="s3cret")

    def needs_cryptography(self, password):
        raise DependencyError("cryptography is required for AES algorithm")

    monkeypatch.setattr(PdfReader, "decrypt", needs_cryptography)
    error = refusal(path, password="s3cret")
    assert error.key == "rag.parse.unsupported_encryption" and "cryptography" in error.params["error"]


def test_page_that_fails_to_extract_names_its_number(tmp_path, monkeypatch):
    path = make_pdf(tmp_path / "odd.pdf", ["fine", "broken"])
    real = PageObject.extract_text

    def extract(self, *args, **kwargs):
        text = real(self, *args, **kwargs)
        if text == "broken":
            raise KeyError("/Font")
        return text

    monkeypatch.setattr(PageObject, "extract_text", extract)
    error = refusal(path)
    assert error.key == "rag.parse.corrupt_page" and error.params["page"] == 2


def test_pdf_without_any_text_says_which_pages_and_no_ocr(tmp_path):
    error = refusal(make_pdf(tmp_path / "scan.pdf", [""] * 9))
    assert error.key == "rag.parse.no_text" and error.params == {"file": "scan.pdf", "pages": "1-9"}
    assert "no text found on pages 1-9 (scanned images?); OCR is not available" in error.message


def test_pdf_without_pages_is_refused(tmp_path):
    assert refusal(make_pdf(tmp_path / "nothing.pdf", [])).key == "rag.parse.no_pages"


def test_blank_text_file_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\f\n  \n", encoding="utf-8")
    assert refusal(path).key == "rag.parse.blank_text"


def test_text_file_not_in_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("fine\nstill fine\nAño".encode("latin-1"))
    error = refusal(path)
    assert error.key == "rag.parse.not_utf8" and error.params == {"file": "latin.txt", "line": 3}


@pytest.mark.parametrize("name", ["slides.pptx", "book.doc", "noextension"])
def test_unsupported_extension_lists_supported_ones(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"some bytes")
    error = refusal(path)
    assert error.key == "rag.parse.unsupported" and error.params["supported"] == ".pdf, .docx, .txt, .md"
    assert ".pdf, .docx, .txt, .md" in error.message


def test_word_files_keep_their_pages_tables_and_paragraphs(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Leave policy", level=1)
    document.add_paragraph("Every employee gets 25 days of paid holiday.")
    document.add_page_break()
    document.add_paragraph("Sick days need a note after the third day.")
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Parental leave", "16 weeks"
    run = document.add_paragraph("Rendered on page three by Word.").runs[0]
    run._r.insert(0, run._r.makeelement("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
                                        "lastRenderedPageBreak", {}))
    document.save(tmp_path / "policy.docx")
    doc = read_document(tmp_path / "policy.docx")
    assert [p.number for p in doc.pages] == [1, 2, 3] and doc.empty_pages == []
    assert doc.pages[0].text == "Leave policy\n\nEvery employee gets 25 days of paid holiday."
    assert doc.pages[1].text == "Sick days need a note after the third day.\n\nParental leave\n\n16 weeks"
    assert doc.pages[2].text == "Rendered on page three by Word."


def test_a_damaged_word_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK not really a zip")
    error = refusal(path)
    assert error.key == "rag.parse.corrupt_docx" and "save it again as .docx" in error.message


def test_500_page_pdf_parses(tmp_path):
    pages = [f"Page {n} heading\nA line of body text on page {n}, long enough to look like prose." for n in
             range(1, 501)]
    path = make_pdf(tmp_path / "long.pdf", pages)
    start = time.perf_counter()
    doc = read_document(path)
    seconds = time.perf_counter() - start
    print(f"\nparsed 500 generated PDF pages in {seconds:.2f} s ({500 / seconds:.0f} pages/s)")
    assert len(doc.pages) == 500 and doc.pages[499].text.startswith("Page 500 heading")


def shipped_pdfs() -> list[Path]:
    """PDFs that installed packages ship (the project's venv first, then system package docs), smallest first."""
    found = [p for root in (ROOT / ".venv", Path("/usr/share/doc")) if root.is_dir() for p in root.rglob("*.pdf")]
    return sorted(found, key=lambda p: p.stat().st_size)


def test_a_real_pdf_from_an_installed_package_has_text():
    pdfs = shipped_pdfs()
    if not pdfs:
        pytest.skip("no installed package ships a PDF here")
    doc = read_document(pdfs[0])
    assert doc.pages and len(doc.empty_pages) < len(doc.pages)
    print(f"\n{pdfs[0]}: {len(doc.pages)} pages, {len(doc.pages) - len(doc.empty_pages)} with text")


def installed_pdfs() -> list[Path]:
    """Real PDFs that installed packages ship (Debian docs, Python packages), smallest first."""
    import sys

    found = []
    for root in (Path(sys.prefix), Path("/usr/share/doc")):
        if root.exists():
            found += [p for p in root.rglob("*.pdf") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_size)[:3]


@pytest.mark.skipif(not installed_pdfs(), reason="no installed package ships a PDF on this machine")
def test_real_pdfs_from_installed_packages_keep_their_pages_and_chunk_within_the_limit():
    from transformers import AutoTokenizer

    from studio.models.embedded import minilm_path
    from studio.rag.chunking import chunk_document

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    for path in installed_pdfs():
        doc = read_document(path)
        assert len(doc.pages) >= 1 and [p.number for p in doc.pages] == list(range(1, len(doc.pages) + 1))
        chunks = chunk_document(doc, tokenizer)
        assert chunks and all(len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= 254 for c in chunks)
        assert {p for c in chunks for p in c.pages} <= {p.number for p in doc.pages if p.text}
