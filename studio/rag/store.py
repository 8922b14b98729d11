"""Named, persistent document collections: Chroma holds the chunk vectors, a manifest holds the files.

Each collection is a Chroma collection (cosine distance) under `<workspace>/rag/chroma` whose
metadata records the embedder's name and vector size, so a collection is only ever searched with
the model that built it (a mismatch is refused), plus a JSON manifest under
`<workspace>/rag/manifests/` that maps file names to content hashes. The manifest makes
re-ingestion cheap and exact: the same bytes again are a no-op; a changed file under the same name
replaces its chunks (the file's version goes up); different names with the same bytes are indexed
once and every name is kept. Chunk ids are `<content hash>-<n>`, so they are stable across runs.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from studio.errors import StudioError
from studio.rag.retrieval import MODES, Hit, rrf
from studio.rag.words_index import WordIndex

FIELD = "rag.collection"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,62}[A-Za-z0-9]$")
ADD_BATCH = 128


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)      # new files indexed
    replaced: list[str] = field(default_factory=list)   # same name, new content: old chunks removed
    unchanged: list[str] = field(default_factory=list)  # same name, same content: nothing to do
    aliased: list[str] = field(default_factory=list)    # new name for content already indexed
    empty_pages: dict[str, str] = field(default_factory=dict)  # file -> "3-9" pages without text
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME.match(name):
        raise StudioError(f"Collection name '{name}' must be 3-64 letters, digits, '.', '_' or '-', starting and "
                          "ending with a letter or digit.", field=FIELD, key="rag.store.bad_name", name=name)
    return name


def _missing(name: str) -> StudioError:
    return StudioError(f"There is no collection '{name}'; add documents to create it.", field=FIELD,
                       key="rag.store.missing", name=name)


def _empty(name: str) -> StudioError:
    return StudioError(f"Collection '{name}' has no documents yet; add some first.", field=FIELD,
                       key="rag.store.empty", name=name)


class RagStore:
    """The workspace's collections, on a local persistent Chroma or on a Chroma server (`url`)."""

    def __init__(self, ws, url: str | None = None):
        import chromadb

        self.home = Path(ws.home) / "rag"
        self.manifests = self.home / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        if url:
            from urllib.parse import urlparse

            parsed = urlparse(url)
            self.client = chromadb.HttpClient(host=parsed.hostname or "127.0.0.1", port=parsed.port or 8000,
                                              ssl=parsed.scheme == "https")
        else:
            self.client = chromadb.PersistentClient(path=str(self.home / "chroma"))
        self._words: dict[str, WordIndex] = {}  # name -> its word index, as loaded or built by this process
        self._manifests: dict[str, tuple] = {}  # name -> ((mtime, size), manifest, contents digest)

    # --- collections ---------------------------------------------------------------------------
    def _manifest_path(self, name: str) -> Path:
        return self.manifests / f"{name}.json"

    def manifest(self, name: str) -> dict:
        path = self._manifest_path(name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"files": {}, "contents": {}}

    def _save_manifest(self, name: str, manifest: dict) -> None:
        tmp = self._manifest_path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(self._manifest_path(name))

    def names(self) -> list[str]:
        return sorted(c.name for c in self.client.list_collections())

    def collection(self, name: str, embedder: Any, create: bool = False) -> Any:
        """The Chroma collection `name`, refusing one built by another embedder."""
        from chromadb.errors import NotFoundError

        name = check_name(name)
        try:  # one request (no listing first): on a Chroma server each one is a round trip
            col = self.client.get_collection(name, embedding_function=None)
        except NotFoundError:
            if not create:
                raise _missing(name) from None
            return self.client.create_collection(
                name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None,
                metadata={"embedder": embedder.name, "dim": embedder.dim, "distance": "cosine",
                          "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        built_with = (col.metadata or {}).get("embedder")
        if built_with != embedder.name or (col.metadata or {}).get("dim") != embedder.dim:
            raise StudioError(f"Collection '{name}' was built with the embedder '{built_with}', not "
                              f"'{embedder.name}'; search it with '{built_with}' or build a new collection.",
                              field="rag.embedder", key="rag.store.embedder_mismatch", name=name,
                              built_with=str(built_with), embedder=embedder.name)
        return col

    def require(self, name: str) -> str:
        """`name`, checked to be a collection with documents: what a search needs, known without an embedder,
        so it is refused before one is loaded."""
        from chromadb.errors import NotFoundError

        name = check_name(name)
        try:
            col = self.client.get_collection(name, embedding_function=None)
        except NotFoundError:
            raise _missing(name) from None
        if col.count() == 0:
            raise _empty(name)
        return name

    def describe(self) -> list[dict]:
        """One row per collection: name, embedder, files, chunks."""
        rows = []
        for name in self.names():
            col = self.client.get_collection(name, embedding_function=None)
            rows.append({"name": name, "embedder": (col.metadata or {}).get("embedder"),
                         "files": len(self.manifest(name)["files"]), "chunks": col.count()})
        return rows

    def delete(self, name: str) -> None:
        name = check_name(name)
        if name not in self.names():
            raise StudioError(f"There is no collection '{name}'.", field=FIELD, key="rag.store.missing", name=name)
        self.client.delete_collection(name)
        self._manifest_path(name).unlink(missing_ok=True)
        shutil.rmtree(self._words_path(name), ignore_errors=True)
        self._words.pop(name, None)

    # --- ingestion -----------------------------------------------------------------------------
    def ingest(self, name: str, paths: list[Path], embedder: Any, settings: Any = None,
               progress: Callable[[int, int], None] | None = None, names: list[str] | None = None,
               password: str | None = None) -> IngestReport:
        """Parse, chunk, embed and index `paths` into collection `name` (created on first use).

        `progress(pages_done, pages_total)` is called after each batch of chunks is indexed. `password` opens
        encrypted PDFs. Every file is read before any is indexed, so an unreadable one raises with the
        collection unchanged."""
        from studio.rag.chunking import chunk_document
        from studio.rag.parsing import page_ranges, read_document

        if check_name(name) in self.names():
            self.collection(name, embedder)  # refuses another embedder's collection before any parsing
        chunking = self._check_chunking(name, settings)
        report = IngestReport()
        began = time.perf_counter()
        docs = [read_document(Path(p), password, name=(names[i] if names else None)) for i, p in enumerate(paths)]
        col = self.collection(name, embedder, create=True)
        manifest = self.manifest(name)
        manifest.update(chunking=chunking, embedder=embedder.name)
        total = sum(len(d.pages) for d in docs)
        done = 0
        for doc in docs:
            known = manifest["files"].get(doc.name)
            if known and known["sha256"] == doc.sha256:
                report.unchanged.append(doc.name)
            elif doc.sha256 in manifest["contents"]:
                manifest["contents"][doc.sha256].append(doc.name)
                self._forget(col, manifest, doc.name)
                manifest["files"][doc.name] = {"sha256": doc.sha256, "version": 1, "pages": len(doc.pages)}
                report.aliased.append(doc.name)
            else:
                version = 1
                if known:
                    self._forget(col, manifest, doc.name)
                    version = known["version"] + 1
                    report.replaced.append(doc.name)
                else:
                    report.added.append(doc.name)
                chunks = chunk_document(doc, embedder.tokenizer, settings)
                col.delete(where={"doc_sha256": doc.sha256})  # what an interrupted earlier try left half-added
                self._save_pages(doc)
                self._add(col, doc, chunks, embedder,
                          lambda page: progress(done + page, total) if progress else None)
                manifest["contents"][doc.sha256] = [doc.name]
                manifest["files"][doc.name] = {"sha256": doc.sha256, "version": version, "pages": len(doc.pages),
                                               "chunks": len(chunks)}
                report.chunks += len(chunks)
            if doc.empty_pages:
                report.empty_pages[doc.name] = page_ranges(doc.empty_pages)
            report.pages += len(doc.pages)
            done += len(doc.pages)
            self._save_manifest(name, manifest)
            if progress:
                progress(done, total)
        if col.count():
            self.word_index(name, col)  # saved now, so no question waits for it
        report.seconds = time.perf_counter() - began
        return report

    def _check_chunking(self, name: str, settings: Any) -> dict:
        """The chunk sizes this ingest uses, refused when the collection was chunked with others (its chunks would
        mix two sizes, silently)."""
        from studio.rag.chunking import ChunkSettings

        settings = settings or ChunkSettings()
        wanted = {"chunk_tokens": settings.chunk_tokens, "overlap_tokens": settings.overlap_tokens}
        kept = self.manifest(check_name(name)).get("chunking")
        if kept and kept != wanted:
            raise StudioError(f"Collection '{name}' was chunked with {kept['chunk_tokens']} word pieces per chunk and "
                              f"{kept['overlap_tokens']} of overlap; add files with the same chunk settings or build "
                              "a new collection.", field="rag.chunk_tokens", key="rag.store.chunking_mismatch",
                              name=name, chunk=kept["chunk_tokens"], overlap=kept["overlap_tokens"])
        return wanted

    def _add(self, col: Any, doc: Any, chunks: list, embedder: Any, pages_done: Callable[[int], Any]) -> None:
        """Embed and index `chunks` in batches, telling `pages_done` how far into the document each batch got."""
        for start in range(0, len(chunks), ADD_BATCH):
            batch = chunks[start:start + ADD_BATCH]
            col.add(ids=[f"{doc.sha256[:16]}-{start + i}" for i in range(len(batch))],
                    embeddings=embedder.encode([c.text for c in batch]), documents=[c.text for c in batch],
                    metadatas=[{"file": doc.name, "doc_sha256": doc.sha256, "pages": ",".join(map(str, c.pages)),
                                "start": c.start, "end": c.end, "chunk_sha256": c.sha256} for c in batch])
            pages_done(batch[-1].pages[-1])

    # --- page texts ----------------------------------------------------------------------------
    def _pages_path(self, sha256: str) -> Path:
        return self.home / "pages" / f"{sha256}.json"

    def _save_pages(self, doc: Any) -> None:
        """Keep each page's full text, so a cited chunk can be shown within its page."""
        path = self._pages_path(doc.sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([p.text for p in doc.pages], ensure_ascii=False), encoding="utf-8")

    def page_text(self, name: str, file: str, page: int) -> str:
        """The whole text of page `page` of `file` (one of its names) in collection `name`."""
        entry = self.manifest(check_name(name))["files"].get(file.split(" = ")[0])
        path = self._pages_path(entry["sha256"]) if entry else None
        if path is None or not path.exists():
            raise StudioError(f"'{file}' is not in collection '{name}'; pick a source from the last answer.",
                              field="rag.source", key="rag.store.no_file", file=file, name=name)
        pages = json.loads(path.read_text(encoding="utf-8"))
        if not 1 <= page <= len(pages):
            raise StudioError(f"'{file}' has pages 1-{len(pages)}, not {page}; pick a page in that range.",
                              field="rag.page", key="rag.store.no_page", file=file, pages=len(pages), page=page)
        return pages[page - 1]

    def _forget(self, col: Any, manifest: dict, file: str) -> None:
        """Drop `file`'s name; its chunks go when no other name still holds the same content."""
        entry = manifest["files"].pop(file, None)
        if not entry:
            return
        holders = [n for n in manifest["contents"].get(entry["sha256"], []) if n != file]
        if holders:
            manifest["contents"][entry["sha256"]] = holders
            return
        manifest["contents"].pop(entry["sha256"], None)
        col.delete(where={"doc_sha256": entry["sha256"]})

    # --- search --------------------------------------------------------------------------------
    def _words_path(self, name: str) -> Path:
        return self.home / "words" / name

    def _read_manifest(self, name: str) -> tuple[dict, str]:
        """The manifest for reading only, and a digest of which contents it lists; both kept while the file is
        unchanged (a search reads them, and at 100k chunks re-reading the file cost more than the search)."""
        path = self._manifest_path(name)
        stat = path.stat() if path.exists() else None
        mtime = (stat.st_mtime_ns, stat.st_size) if stat else (0, 0)
        cached = self._manifests.get(name)
        if cached is None or cached[0] != mtime:
            manifest = self.manifest(name)
            digest = hashlib.sha256(json.dumps(sorted(manifest["contents"])).encode()).hexdigest()[:16]
            cached = self._manifests[name] = (mtime, manifest, digest)
        return cached[1], cached[2]

    def _stamp(self, name: str, count: int) -> str:
        """What the collection holds, in short: its chunk count and which contents its manifest lists."""
        return f"{count}-{self._read_manifest(name)[1]}"

    def word_index(self, name: str, col: Any = None, count: int | None = None) -> WordIndex:
        """The collection's BM25 word index: this process's copy, else the one saved beside the collection, else
        (the collection changed since) one built from its chunks and saved for every process. `count`: the
        collection's chunk count when the caller has it (Chroma counts 100k chunks in about 9 ms)."""
        col = col or self.client.get_collection(check_name(name), embedding_function=None)
        stamp = self._stamp(name, col.count() if count is None else count)
        index = self._words.get(name)
        if index is None or index.stamp != stamp:
            index = WordIndex.load(self._words_path(name))
        if index is None or index.stamp != stamp:
            got = col.get(include=["documents"])
            index = WordIndex.build(got["ids"], got["documents"], stamp)
            self._words_path(name).parent.mkdir(parents=True, exist_ok=True)
            index.save(self._words_path(name))
        self._words[name] = index
        return index

    def search(self, name: str, question: str, embedder: Any, k: int = 5, mode: str = "hybrid",
               also: list[str] = ()) -> list[Hit]:
        """The `k` best chunks for `question`, each with its cosine similarity to it. `also`: other wordings of the
        question (its translation into the documents' language) searched alongside: each wording is ranked on its
        own and a chunk keeps its best rank score over them, so the best chunks of every wording come first, the
        question's own first on a tie. A chunk's similarity and BM25 score are its best over the wordings."""
        if mode not in MODES:
            raise StudioError(f"Retrieval mode '{mode}' does not exist; choose {', '.join(MODES)}.",
                              field="rag.mode", key="rag.store.bad_mode", mode=mode, modes=", ".join(MODES))
        col = self.collection(name, embedder)
        count = col.count()
        if count == 0:
            raise _empty(name)
        wordings = [question, *[a for a in also if a and a != question]]
        vectors = embedder.encode(wordings)
        depth = min(count, max(k * 4, 20))
        dense = col.query(query_embeddings=list(vectors), n_results=depth, include=["distances"])
        words = self.word_index(name, col, count)
        ids = words.ids
        similarity: dict[str, float] = {}
        bm25_score: dict[str, float] = {}
        dense_lists, bm25_lists = [], []
        for n, wording in enumerate(wordings):
            dense_lists.append(dense["ids"][n])
            for i, d in zip(dense["ids"][n], dense["distances"][n]):
                similarity[i] = max(similarity.get(i, -1.0), 1.0 - d)
            top = words.top(wording, depth)
            bm25_lists.append([ids[i] for i, _ in top])
            for i, score in top:
                bm25_score[ids[i]] = max(bm25_score.get(ids[i], 0.0), score)
        if len(wordings) == 1 and mode != "hybrid":
            ranked = ([(i, similarity[i]) for i in dense_lists[0]] if mode == "dense"
                      else [(i, bm25_score[i]) for i in bm25_lists[0]])
        else:
            best: dict[str, float] = {}
            for dense_ids, bm25_ids in zip(dense_lists, bm25_lists):
                lists = {"dense": [dense_ids], "bm25": [bm25_ids], "hybrid": [dense_ids, bm25_ids]}[mode]
                for chunk_id, score in rrf(lists):
                    best[chunk_id] = max(best.get(chunk_id, 0.0), score)
            ranked = sorted(best.items(), key=lambda item: -item[1])  # stable: the question's own wording first
        ranked = ranked[:k]
        got = (col.get(ids=[i for i, _ in ranked], include=["documents", "metadatas", "embeddings"]) if ranked
               else {"ids": [], "documents": [], "metadatas": [], "embeddings": []})
        rows = {i: (d, m, e) for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])}
        contents = self._read_manifest(name)[0]["contents"]
        hits = []
        for chunk_id, score in ranked:
            text, meta, vector = rows[chunk_id]
            if chunk_id not in similarity:  # a BM25-only hit: its similarity still decides whether the documents answer
                similarity[chunk_id] = max(float(sum(a * b for a, b in zip(q, vector))) for q in vectors)
            names = contents.get(meta["doc_sha256"], [meta["file"]])
            hits.append(Hit(id=chunk_id, text=text, file=" = ".join(names), score=float(score),
                            pages=[int(p) for p in str(meta["pages"]).split(",") if p],
                            similarity=similarity.get(chunk_id), bm25=bm25_score.get(chunk_id), meta=meta))
        return hits
