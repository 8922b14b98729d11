"""PDF text extraction: pypdf (what `studio.rag.parsing` uses) against PyMuPDF, on speed and text quality.

Corpora: (a) a generated PDF (`tests/rag_pdf.make_pdf`) of `--pages` pages of prose with accents, cycled
from assets/general-text.txt, whose true text is known; (b) every real PDF found on this disk under
the folders installed packages ship into (`--search`). For each file and parser it times the whole
extraction (open + every page's text, best of `--repeats`) and prints pages/s, then compares the
two texts: characters, words, the share of words found in both (multiset overlap), word order
(mean per-page difflib ratio over the word sequences), line breaks, ligature characters (U+FB00-FB06,
which split "ﬁle" from "file" for BM25), hyphenated line ends and replacement characters, plus a
short diff of the page where the two disagree most. On the generated file each parser is also
scored against the true text. Nothing is asserted.

PyMuPDF is not a dependency of the studio (AGPL); install it only to run this:

    .venv/bin/pip install pymupdf
    .venv/bin/python bench/pdf_parsers.py [--pages 500] [--repeats 3] [--search DIR ...]
"""
from __future__ import annotations

import argparse
import difflib
import io
import os
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from studio.rag.parsing import tidy  # noqa: E402

SEARCH = [ROOT / ".venv", Path("/usr/share"), Path("/usr/lib")]
WORDS_PER_PAGE = 180
LIGATURES = re.compile("[\ufb00-\ufb06]")
HYPHEN_BREAK = re.compile(r"\w-\n\w")
WORD = re.compile(r"\w+")


def extract_pypdf(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


def extract_pymupdf(data: bytes) -> list[str]:
    import pymupdf

    with pymupdf.open(stream=data, filetype="pdf") as doc:
        return [page.get_text() for page in doc]


PARSERS = {"pypdf": extract_pypdf, "pymupdf": extract_pymupdf}


def prose_pages(pages: int) -> list[str]:
    """`pages` pages of ~180 words each, wrapped at 90 characters, cycling the sample text."""
    text = (ROOT / "assets" / "general-text.txt").read_text(encoding="utf-8").split()
    out, at = [], 0
    for _ in range(pages):
        words = [text[(at + i) % len(text)] for i in range(WORDS_PER_PAGE)]
        at += WORDS_PER_PAGE
        out.append(textwrap.fill(" ".join(words), 90))
    return out


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def timed(parser, data: bytes, repeats: int) -> tuple[list[str], float]:
    best, pages = float("inf"), []
    for _ in range(repeats):
        began = time.perf_counter()
        pages = parser(data)
        best = min(best, time.perf_counter() - began)
    return pages, best


def overlap(a: list[str], b: list[str]) -> float:
    """Multiset overlap of two word lists: shared words / all words (1.0 = the same words, any order)."""
    ca, cb = Counter(a), Counter(b)
    union = sum((ca | cb).values())
    return sum((ca & cb).values()) / union if union else 1.0


def similarity(pages_a: list[str], pages_b: list[str], split) -> tuple[float, int]:
    """Mean per-page similarity of `split(page)` sequences (1.0 = the same items in the same order),
    and the index of the page where they differ most."""
    ratios = [difflib.SequenceMatcher(None, split(a), split(b), autojunk=False).ratio()
              for a, b in zip(pages_a, pages_b)]
    worst = min(range(len(ratios)), key=ratios.__getitem__)
    return sum(ratios) / len(ratios), worst


def order(pages_a: list[str], pages_b: list[str]) -> float:
    return similarity(pages_a, pages_b, words)[0]


def traits(pages: list[str]) -> dict:
    text = "\n".join(pages)
    return {"chars": len(text), "words": len(words(text)), "lines": text.count("\n") + 1,
            "ligatures": len(LIGATURES.findall(text)), "hyphen_breaks": len(HYPHEN_BREAK.findall(text)),
            "replacement": text.count("\ufffd")}


def diff_sample(a: str, b: str, hunks: int = 2, lines: int = 4, width: int = 100) -> str:
    """The first `hunks` hunks of the line diff a -> b, each cut to `lines` removed and `lines` added lines."""
    out, hunk = [], None
    for line in difflib.unified_diff(a.splitlines(), b.splitlines(), n=0, lineterm=""):
        if line.startswith("@@"):
            if len(out) and hunk is not None:
                hunks -= 1
            if not hunks:
                break
            hunk = {"-": [], "+": []}
            out.append(hunk)
        elif hunk is not None and line[:1] in hunk:
            hunk[line[0]].append(line[:width])
    text = []
    for h in out:
        for sign in "-+":
            text += h[sign][:lines] + ([f"{sign}   ... {len(h[sign]) - lines} more"] if len(h[sign]) > lines else [])
        text.append("")
    return "\n".join(text).rstrip()


def compare(label: str, data: bytes, repeats: int, truth: list[str] | None = None) -> list[dict]:
    results = {}
    for name, parser in PARSERS.items():
        pages, seconds = timed(parser, data, repeats)
        pages = [tidy(page) for page in pages]  # what the studio keeps: no trailing spaces or blank runs
        results[name] = {"file": label, "parser": name, "pages": len(pages), "seconds": seconds,
                         "pages_per_s": len(pages) / seconds, "texts": pages, **traits(pages)}
        if truth is not None:
            true_words = words("\n".join(truth))
            results[name]["vs_truth"] = overlap(true_words, words("\n".join(pages)))
            results[name]["lines_vs_truth"] = similarity(truth, pages, str.splitlines)[0]
    a, b = results["pypdf"]["texts"], results["pymupdf"]["texts"]
    shared = overlap(words("\n".join(a)), words("\n".join(b)))
    same_lines, worst = similarity(a, b, str.splitlines)
    identical = sum(x == y for x, y in zip(a, b)) / len(a)
    for r in results.values():
        r.update(shared=shared, order=order(a, b), same_lines=same_lines, identical=identical, worst_page=worst + 1)
    return list(results.values())


def find_pdfs(folders: list[Path]) -> list[Path]:
    found = set()
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            found.update(Path(dirpath) / f for f in files if f.lower().endswith(".pdf"))
    return sorted(found)


def print_table(rows: list[dict]) -> None:
    head = (f"{'file':<34} {'parser':<8} {'pages':>5} {'pages/s':>8} {'chars':>8} {'words':>7} {'lines':>6} "
            f"{'lig':>4} {'hyph':>5} {'U+FFFD':>6} {'shared':>7} {'order':>6} {'lsim':>6} {'ident':>6} {'vs true':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        truth = f"{r['vs_truth']:.3f}/{r['lines_vs_truth']:.3f}" if "vs_truth" in r else "-"
        print(f"{r['file'][-34:]:<34} {r['parser']:<8} {r['pages']:>5} {r['pages_per_s']:>8.1f} {r['chars']:>8} "
              f"{r['words']:>7} {r['lines']:>6} {r['ligatures']:>4} {r['hyphen_breaks']:>5} {r['replacement']:>6} "
              f"{r['shared']:>7.4f} {r['order']:>6.4f} {r['same_lines']:>6.3f} {r['identical']:>6.1%} {truth:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=500, help="pages of the generated PDF")
    parser.add_argument("--repeats", type=int, default=3, help="timed extractions per file and parser (best)")
    parser.add_argument("--search", type=Path, nargs="*", default=SEARCH, help="folders searched for real PDFs")
    args = parser.parse_args()
    try:
        import pymupdf
    except ImportError:
        raise SystemExit("PyMuPDF is not installed: .venv/bin/pip install pymupdf (only for this benchmark)")
    import pypdf

    from tests.rag_pdf import make_pdf

    print(f"pypdf {pypdf.__version__} vs PyMuPDF {pymupdf.VersionBind} (MuPDF {pymupdf.VersionFitz})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        truth = prose_pages(args.pages)
        generated = make_pdf(Path(tmp) / f"generated-{args.pages}p.pdf", truth)
        rows += compare(generated.name, generated.read_bytes(), args.repeats, truth)
    real = find_pdfs(args.search)
    print(f"real PDFs found under {', '.join(map(str, args.search))}: {len(real)}")
    for path in real:
        print(f"  {path} ({path.stat().st_size // 1024} KiB)")
        try:
            rows += compare(path.name, path.read_bytes(), args.repeats)
        except Exception as exc:  # a PDF one parser cannot open is itself a finding
            print(f"    skipped: {type(exc).__name__}: {exc}")
    print()
    print_table(rows)
    print("\nTexts as the studio keeps them (parsing.tidy). lines = line count; lig = U+FB00-FB06 characters; "
          "hyph = 'x-\\nx' line ends;\nshared = multiset word overlap pypdf/pymupdf; order = mean per-page "
          "word-sequence similarity;\nlsim = mean per-page line-sequence similarity; ident = pages with "
          "identical text;\nvs true = word overlap / line similarity with the generated text.")
    for a, b in zip(rows[::2], rows[1::2]):
        page = a["worst_page"]
        if a["texts"][page - 1] != b["texts"][page - 1]:
            print(f"\n--- {a['file']}, page {page} (where the two differ most), diff pypdf (-) -> pymupdf (+):")
            print(textwrap.indent(diff_sample(a["texts"][page - 1], b["texts"][page - 1]), "    "))
        else:
            print(f"\n--- {a['file']}: both parsers give identical text on every page")


if __name__ == "__main__":
    main()
