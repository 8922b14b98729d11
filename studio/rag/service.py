"""The RAG chat's engine facade: collections, background indexing with progress, answers, page texts, feedback.

`RagService` is what the RAG Chat tab and `studio rag` call. Indexing runs on one background thread
of the app (`start_indexing` returns a job id at once; `job` reports pages done, pages/s and the
result) and is a row of the workspace's `jobs` table (kind 'index', `studio.jobs.threads`), so
`studio jobs` lists, cancels and retries it; the chat keeps answering meanwhile; a question about a collection being indexed gets an
`indexing` notice with the progress, and answers from what is indexed so far. Indexing stays in the
app's process rather than a job worker process because a local Chroma store belongs to one process;
teams that need more point `STUDIO_CHROMA_URL` (or `url`) at a Chroma server instead.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from studio.errors import StudioError
from studio.jobs.threads import JobThread, ThreadJob
from studio.rag import embedder as embedders
from studio.rag.answer import Answer, AskSettings, answer_question, check_question
from studio.rag.embedder import DEFAULT_EMBEDDER
from studio.rag.parsing import check_files
from studio.rag.store import RagStore, check_name
from studio.phase import Phase


@dataclass(kw_only=True)
class IndexJob(ThreadJob):
    collection: str
    files: list[str]
    kind: str = "index"
    pages_done: int = 0
    pages_total: int = 0
    report: Any = None

    @property
    def pages_per_s(self) -> float:
        end = self.finished or time.time()
        return self.pages_done / (end - self.started) if self.started and end > self.started else 0.0

    def summary(self) -> dict | None:
        return self.as_dict().get("report")

    def as_dict(self) -> dict:
        out = {"id": self.id, "collection": self.collection, "files": self.files, "state": self.state,
               "pages_done": self.pages_done, "pages_total": self.pages_total,
               "pages_per_s": round(self.pages_per_s, 1), "error": self.error.message if self.error else None}
        if self.report is not None:
            r = self.report
            out["report"] = {"added": r.added, "replaced": r.replaced, "unchanged": r.unchanged, "aliased": r.aliased,
                             "pages": r.pages, "chunks": r.chunks, "seconds": round(r.seconds, 2),
                             "chunks_per_s": round(r.chunks_per_s, 1), "empty_pages": r.empty_pages}
        return out


def _failed(job: ThreadJob, error: Exception) -> StudioError:
    return StudioError(f"Indexing failed: {error}.", field="rag.files", key="rag.service.failed", reason=str(error))


class RagService:
    def __init__(self, ws: Any, url: str | None = None, embedder_loader: Callable[[str, Any], Any] | None = None):
        self.ws = ws
        self.url = url if url is not None else os.environ.get("STUDIO_CHROMA_URL") or None
        self.store = RagStore(ws, self.url)
        # Looked up when needed rather than bound here, so `studio.rag.embedder.load_embedder` stays the one to patch.
        self._load_embedder = embedder_loader or (lambda name, ws: embedders.load_embedder(name, ws))
        self.jobs = JobThread(ws, "studio-indexing", _failed)
        self.pool: Any = None  # the answering models, created on the first question (or shared by the app)

    def embedder(self, name: str | None = None) -> Any:
        return self._load_embedder(name or DEFAULT_EMBEDDER, self.ws)

    def embedder_of(self, collection: str) -> Any:
        """The embedder a collection was built with (so a search never mixes embedding spaces)."""
        for row in self.store.describe():
            if row["name"] == collection:
                return self.embedder(row["embedder"])
        return self.embedder()

    def manifest(self, collection: str) -> dict:
        """What a collection holds, file by file (pages, chunks, sha256, chunking), for the library view."""
        return self.store.manifest(collection)

    def write_pairs(self, collection: str, teacher: str, passages: int = 20, answers: str = "auto") -> list[dict]:
        """Question/answer pairs a teacher writes from the collection's passages (`studio.rag.synth`)."""
        from studio.generation import ModelPool
        from studio.rag import synth

        self.pool = self.pool or ModelPool(self.ws, capacity=1)
        picked = synth.sample_passages(self.store, collection, passages)
        ask, answer, _ = synth.teacher(self.ws, teacher, self.embedder_of(collection), answers, pool=self.pool)
        return synth.write_pairs(picked, ask, answer)

    def collections(self) -> list[dict]:
        rows = self.store.describe()
        for row in rows:
            job = self.indexing(row["name"])
            row["indexing"] = job.as_dict() if job else None
        return rows

    # --- indexing ------------------------------------------------------------------------------
    def start_indexing(self, collection: str, paths: list[Path], names: list[str] | None = None,
                       chunking: Any = None, embedder: str | None = None, password: str | None = None,
                       owner: str | None = None) -> str:
        """Queue `paths` for indexing into `collection`; returns the job id at once (see `job`). A file that
        cannot be indexed (missing, empty, locked, not what its name says) is refused here, before the job loads
        an embedder. The files are copied into the workspace (`rag/incoming/`) until the job completes, so an
        interrupted or cancelled job can be retried after the upload's temp files are gone."""
        collection = check_name(collection)
        if not paths:
            raise StudioError("No files were given; choose one or more PDF, Word, TXT or MD files to add.",
                              field="rag.files", key="rag.service.no_files")
        check_files([Path(p) for p in paths], names, password)
        names = list(names or [Path(p).name for p in paths])
        kept = self._keep(paths, names)
        job = IndexJob(collection=collection, files=names)
        params = {"collection": collection, "paths": [str(p) for p in kept], "names": names,
                  "chunking": asdict(chunking) if chunking is not None else None, "embedder": embedder,
                  "password": bool(password)}
        title = f"{collection} <- {', '.join(names)}"
        return self.jobs.submit(job, title[:200], params, self._index, kept, names, chunking, embedder, password,
                                owner=owner)

    def _keep(self, paths: list[Path], names: list[str]) -> list[Path]:
        """Copies of `paths` under the workspace (one folder per job, one subfolder per file)."""
        incoming = Path(self.ws.home) / "rag" / "incoming"
        if any(Path(p).resolve().is_relative_to(incoming.resolve()) for p in paths):
            return [Path(p) for p in paths]  # a retry: its files are already kept
        folder = incoming / uuid.uuid4().hex[:12]
        kept = []
        for i, (path, name) in enumerate(zip(paths, names)):
            target = folder / str(i) / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            kept.append(target)
        return kept

    def _index(self, job: IndexJob, paths: list[Path], names, chunking, embedder, password) -> None:
        def progress(done: int, total: int) -> None:
            job.pages_done, job.pages_total = done, total
            self.jobs.progress(job, done / total if total else 0.0, Phase(f"page {done} of {total}", "page", done=done, total=total))

        model = self.embedder_of(job.collection) if embedder is None else self.embedder(embedder)
        job.report = self.store.ingest(job.collection, paths, model, chunking, progress=progress, names=names,
                                       password=password)
        shutil.rmtree(Path(paths[0]).parent.parent, ignore_errors=True)  # the kept copies: indexed now

    def job(self, job_id: str) -> IndexJob:
        return self.jobs.get(job_id, StudioError(f"There is no indexing job '{job_id}'.", field="rag.job",
                                                 key="rag.service.no_job", job_id=job_id))

    def indexing(self, collection: str) -> IndexJob | None:
        """The queued or running indexing job of `collection`, if any."""
        return next((j for j in self.jobs.jobs.values() if j.collection == collection and j.active), None)

    def wait(self, job_id: str, timeout: float = 600) -> IndexJob:
        self.job(job_id)
        return self.jobs.wait(job_id, timeout)

    def cancel(self, job_id: str) -> None:
        """Stop indexing after the batch in progress; files already indexed stay, the rest can be added again."""
        self.job(job_id)
        self.jobs.cancel(job_id)

    def delete(self, collection: str) -> None:
        if self.indexing(collection):
            raise StudioError(f"Collection '{collection}' is being indexed; wait until it finishes, then delete it.",
                              field="rag.collection", key="rag.service.delete_busy", name=collection)
        self.store.delete(collection)

    def shutdown(self) -> None:
        """Stop taking indexing jobs; one in progress stops after its current batch and is marked interrupted."""
        self.jobs.shutdown()

    # --- answers -------------------------------------------------------------------------------
    def ask(self, collection: str, question: str, *, model: str, run_id: str | None = None, generation: Any = None,
            ask: AskSettings | None = None, history: list[dict] | None = None,
            previous_queries: list[str] | None = None, pool: Any = None) -> Iterator[Answer]:
        """`answer_question` over `collection`; each update carries `indexing` (the job's dict) while the collection
        is being indexed. An empty collection still being indexed says so rather than 'no documents'."""
        from studio.generation import ModelPool

        if pool is None:
            self.pool = self.pool or ModelPool(self.ws, capacity=2)
            pool = self.pool
        job = self.indexing(collection)
        notice = job.as_dict() if job else None
        check_question(question)
        try:
            self.store.require(collection)  # before the embedder: loading one takes long, this takes a moment
            embedder = self.embedder_of(collection)
            updates = answer_question(self.ws, self.store, collection, question, embedder, model=model, run_id=run_id,
                                      generation=generation, ask=ask, history=history,
                                      previous_queries=previous_queries, pool=pool)
            for update in updates:
                update.indexing = notice
                yield update
        except StudioError as error:
            if notice and error.key in ("rag.store.empty", "rag.store.missing"):
                raise StudioError(f"Collection '{collection}' is still being indexed ({job.pages_done} of "
                                  f"{job.pages_total} pages); ask again in a moment.", field="rag.collection",
                                  key="rag.service.indexing", name=collection, done=job.pages_done,
                                  total=job.pages_total) from None
            raise

    def page_text(self, collection: str, file: str, page: int) -> str:
        return self.store.page_text(collection, file, page)

    # --- feedback and the retrieval check ------------------------------------------------------------------
    def save_feedback(self, collection: str, answer: dict, rating: str | None = None, better: str = "") -> dict:
        """Record a verdict on an answer (`studio.rag.feedback.save_feedback`); its evalset path is given relative
        to the workspace."""
        from studio.rag.feedback import save_feedback

        saved = save_feedback(self.ws, collection, answer, rating=rating, better=better,
                              model=answer.get("model", ""))
        evalset = saved["evalset"]
        return {**saved, "evalset": str(Path(evalset).relative_to(self.ws.home)) if evalset else None}

    def evalset(self, collection: str) -> Path:
        """The questions approved answers of `collection` left behind (the retrieval check's default file)."""
        return Path(self.ws.home) / "rag" / "evalsets" / f"{collection}.jsonl"

    def check_retrieval(self, collection: str, questions: Path, k: int = 5) -> dict:
        """hit@k, MRR and nDCG@10 of each retrieval mode on the questions of a JSONL/CSV file."""
        from studio.rag.evaluate import evaluate_retrieval, read_questions

        return evaluate_retrieval(self.store, collection, self.embedder_of(collection), read_questions(questions), k=k)
