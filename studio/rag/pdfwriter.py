"""A tiny PDF writer: one text page per string, written object by object.

Tests and the sample documents need PDFs with known text on known pages (and some with none, or a
password) without shipping binary files. Each page gets a Helvetica text stream with one `Tj` per line
(lines are not wrapped: keep them under ~95 characters), in WinAnsi, so only cp1252 characters can be
drawn; an empty string makes a page with no content stream at all, like a scanned page without a text
layer. Only the password step leans on pypdf, whose encryption we would otherwise have to re-implement.
Reading PDFs back is `parsing`'s job.
"""
from __future__ import annotations

from pathlib import Path

LINE_HEIGHT = 14


def _literal(line: str) -> bytes:
    """`line` as a PDF string literal in WinAnsi (so accents survive), with ( ) and \\ escaped."""
    raw = line.encode("cp1252")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _content(text: str) -> bytes:
    """A content stream drawing each line of `text` below the previous one; blank lines leave a gap."""
    ops = [b"BT /F1 12 Tf 72 750 Td"]
    for i, line in enumerate(text.split("\n")):
        if i:
            ops.append(b"0 -%d Td" % LINE_HEIGHT)
        if line:
            ops.append(_literal(line) + b" Tj")
    ops.append(b"ET")
    return b"\n".join(ops)


def _objects(pages: list[str]) -> list[bytes]:
    """The PDF's objects in order, numbered from 1: catalog, page tree, font, then each page (+ stream)."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                                      b"/Encoding /WinAnsiEncoding >>"]
    kids = []
    for text in pages:
        page_number = len(objects) + 1
        kids.append(b"%d 0 R" % page_number)
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
        if text:
            stream = _content(text)
            objects.append(page + b" /Contents %d 0 R >>" % (page_number + 1))
            objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        else:
            objects.append(page + b" >>")
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(pages))
    return objects


def make_pdf(path: Path, pages: list[str], password: str | None = None) -> Path:
    """Write a valid PDF at `path` with one page per string in `pages`; encrypt it when `password` is given."""
    path = Path(path)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    objects = _objects(pages)
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    if password is not None:
        from pypdf import PdfWriter

        writer = PdfWriter(clone_from=path)
        writer.encrypt(password)
        with path.open("wb") as f:
            writer.write(f)
    return path
