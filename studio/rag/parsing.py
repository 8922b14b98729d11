"""Read an uploaded file into pages of text, keeping the page numbers a person would cite.

PDFs go through pypdf page by page; Word files (.docx) are cut where Word put its page breaks
(`docx_pages`); .txt and .md files are one page per form feed (\\f), or one page when they have
none. Every page is kept, even one without text, so numbers never shift; pages with no text are also
listed in `empty_pages` so the UI can say "no text found on pages 3-9". A file we
cannot read is refused with one `StudioError` sentence naming the file and the fix; `check_files`
gives the same refusals for what is cheap to find (missing, empty, locked, not what its name says)
without extracting any text, so callers can run it before loading an embedder. Cutting pages
into chunks is left to `chunking`; OCR of scanned pages is not done at all.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from studio.errors import StudioError
from studio.rag.docx_pages import docx_texts

FIELD = "rag.files"
TEXT_SUFFIXES = (".txt", ".md")
SUPPORTED = (".pdf", ".docx", *TEXT_SUFFIXES)
PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # the PDF spec lets the header start anywhere in the first 1024 bytes


@dataclass
class Page:
    """One page of a document."""

    number: int  # 1-based page number as a person reads it
    text: str


@dataclass
class Document:
    """A parsed file: every page in order, and which of them had no text."""

    name: str  # the file name as uploaded
    pages: list[Page]  # every page, empty text for pages without a text layer
    sha256: str  # of the file's bytes, so the same content uploaded twice is indexed once
    empty_pages: list[int]  # pages with no text (scanned), for the "no text found on pages 3-9" note


def read_document(path: Path, password: str | None = None, name: str | None = None) -> Document:
    """Parse the file at `path` into pages. `name` is the name it was uploaded as (default: the path's),
    and decides the format; `password` opens an encrypted PDF and is ignored for anything else."""
    path = Path(path)
    name = name or path.name
    data = _file_bytes(path, name)
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf":
        texts = _pdf_texts(_pdf_pages(data, name, password), name)
    elif suffix == ".docx":
        texts = docx_texts(data, name, FIELD)
    else:
        texts = _plain_texts(data, name)
    pages = [Page(number, tidy(text)) for number, text in enumerate(texts, start=1)]
    empty = [page.number for page in pages if not page.text]
    if len(empty) == len(pages):
        _refuse_textless(name, suffix, empty)
    return Document(name=name, pages=pages, sha256=hashlib.sha256(data).hexdigest(), empty_pages=empty)


def check_files(paths: list[Path], names: list[str] | None = None, password: str | None = None) -> None:
    """Refuse, in one sentence, the first file that cannot be indexed, by what costs milliseconds: it exists
    and can be read, is not empty, has a supported format, a PDF opens (unlocked) and has pages, a Word file
    is a Word package, a text file is UTF-8 with some text. Callers run this before loading an embedder
    (which takes a minute on a busy machine); extracting every page's text is left to `read_document`."""
    for i, path in enumerate(paths):
        path = Path(path)
        name = (names[i] if names else None) or path.name
        suffix = Path(name).suffix.lower()
        if suffix in TEXT_SUFFIXES:
            read_document(path, name=name)  # reading a text file is as cheap as checking it
            continue
        data = _file_bytes(path, name)
        if suffix == ".pdf":
            _pdf_pages(data, name, password)
        else:
            _check_docx(data, name)


def _file_bytes(path: Path, name: str) -> bytes:
    """The bytes of a file that exists, can be read, is not empty and has a supported format."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StudioError(f"'{path}' does not exist; check the path.", field=FIELD, key="rag.parse.missing_file",
                          file=name, path=str(path)) from None
    except IsADirectoryError:
        raise StudioError(f"'{name}' is a folder, not a file; choose the files inside it.", field=FIELD,
                          key="rag.parse.not_a_file", file=name) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StudioError(f"'{name}' cannot be read ({reason}); check that you may read it, or copy it somewhere "
                          "you can.", field=FIELD, key="rag.parse.unreadable", file=name, reason=reason) from None
    if not data:
        raise StudioError(f"'{name}' is empty (0 bytes); upload the file again or choose another.",
                          field=FIELD, key="rag.parse.empty_file", file=name)
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED:
        supported = ", ".join(SUPPORTED)
        raise StudioError(f"'{name}' cannot be read: the supported files are {supported}; convert it to one "
                          f"of them (for example, save it as PDF) and upload that.", field=FIELD,
                          key="rag.parse.unsupported", file=name, supported=supported)
    return data


def _check_docx(data: bytes, name: str) -> None:
    """A .docx is a zip holding word/document.xml; python-docx must be there to read it."""
    if importlib.util.find_spec("docx") is None:
        docx_texts(data, name, FIELD)  # says how to install python-docx
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            found = "word/document.xml" in package.namelist()
        problem = None if found else "no word/document.xml inside"
    except zipfile.BadZipFile as exc:
        problem = str(exc)
    if problem:
        raise StudioError(f"'{name}' could not be read as a Word file ({problem}); open it in Word and save it "
                          "again as .docx, or as PDF.", field=FIELD, key="rag.parse.corrupt_docx", file=name,
                          error=problem)


def page_ranges(numbers: list[int]) -> str:
    """Page numbers as a person writes them: [3, 4, 5, 9] -> "3-5, 9"."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def tidy(text: str | None) -> str:
    """Drop trailing spaces on every line and runs of 3+ newlines, keeping blank lines between
    paragraphs (chunking splits on them). pypdf may give None for a page; that is no text."""
    if not text:
        return ""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    joined = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip("\n")


def _plain_texts(data: bytes, name: str) -> list[str]:
    """A text file's pages: split on form feeds, the way pdftotext and old printers mark pages."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StudioError(f"'{name}' is not UTF-8 text (line {line}); save it as UTF-8 and upload it again.",
                          field=FIELD, key="rag.parse.not_utf8", file=name, line=line) from exc
    pages = text.split("\f")
    if len(pages) > 1 and not pages[-1].strip():
        pages.pop()  # a form feed ends the last page too; it does not start an empty one
    return pages


def _pdf_pages(data: bytes, name: str, password: str | None) -> list:
    """The pages of a PDF, after checking the file really is a PDF, unlocking it and finding pages in it."""
    if PDF_MAGIC not in data[:MAGIC_WINDOW]:
        raise StudioError(f"'{name}' is named .pdf but is not a PDF file; export it as PDF again, or upload it "
                          f"with its real extension.", field=FIELD, key="rag.parse.not_pdf", file=name)
    try:
        reader = PdfReader(io.BytesIO(data))
        # An encrypted PDF with an empty user password opens without one; only a real lock needs asking.
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
        if locked and password is None:
            raise StudioError(f"'{name}' is password-protected; give its password.", field=FIELD,
                              key="rag.parse.needs_password", file=name)
        if locked and reader.decrypt(password) == PasswordType.NOT_DECRYPTED:
            raise StudioError(f"The password given for '{name}' is wrong; check it and try again.",
                              field=FIELD, key="rag.parse.wrong_password", file=name)
        pages = list(reader.pages)
    except StudioError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files; all mean the same to the user
        raise _unreadable(name, exc) from exc
    if not pages:
        raise StudioError(f"'{name}' is a PDF without any pages; export it again and upload that.", field=FIELD,
                          key="rag.parse.no_pages", file=name)
    return pages


def _pdf_texts(pages: list, name: str) -> list[str | None]:
    """Each page's raw text from pypdf."""
    texts = []
    for number, page in enumerate(pages, start=1):
        try:
            texts.append(page.extract_text())
        except Exception as exc:  # as above, and decryption of AES streams happens only here
            raise _unreadable(name, exc, number) from exc
    return texts


def _unreadable(name: str, exc: Exception, page: int | None = None) -> StudioError:
    """The sentence for a PDF pypdf failed on: missing crypto support, or a damaged file (at `page`)."""
    if isinstance(exc, DependencyError):  # AES needs the optional `cryptography` package
        return StudioError(f"'{name}' is encrypted in a way this installation cannot open ({exc}); save a copy "
                           f"without a password and upload that.", field=FIELD,
                           key="rag.parse.unsupported_encryption", file=name, error=str(exc))
    if page is None:
        return StudioError(f"'{name}' could not be read as a PDF ({exc}); the file is damaged: save or print it "
                           f"to a new PDF and upload that.", field=FIELD, key="rag.parse.corrupt",
                           file=name, error=str(exc))
    return StudioError(f"'{name}' could not be read at page {page} ({exc}); the PDF is damaged: save or print "
                       f"it to a new PDF and upload that.", field=FIELD, key="rag.parse.corrupt_page",
                       file=name, page=page, error=str(exc))


def _refuse_textless(name: str, suffix: str, empty: list[int]) -> None:
    if suffix == ".pdf":
        pages = page_ranges(empty)
        raise StudioError(f"'{name}' has no text: no text found on pages {pages} (scanned images?); OCR is not "
                          f"available, so upload a PDF with a text layer or a .txt of its text.", field=FIELD,
                          key="rag.parse.no_text", file=name, pages=pages)
    raise StudioError(f"'{name}' holds only blank space; add text to it or choose another file.", field=FIELD,
                      key="rag.parse.blank_text", file=name)
