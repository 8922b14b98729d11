"""Running an ended job of a thread kind again from its row's request: RAG indexing, preference candidates,
the AI judge. Training resumes through `JobManager.resume`, an export reruns through `cli_export`.

`restart(ws, job, rag, prefs)` starts the new job on the given service (the app passes its own: a local
Chroma store belongs to one process), or on one made here (a terminal), and returns (the service's
`JobThread`, the new job's id); the caller waits on it or not. What the row cannot hold is asked for again: an encrypted
PDF's password is never stored, so such an index job is started again from the RAG Chat tab.
"""
from __future__ import annotations

from typing import Any

from studio.errors import StudioError

THREAD_KINDS = ("index", "generate", "judge")


def evaluation_request(job: dict) -> tuple[list[str], str, dict]:
    """(targets, dataset, options) of an 'evaluate' row, as `evaluate_recorded` takes them."""
    options = dict(job["params"])
    return options.pop("targets"), options.pop("dataset"), options


def restart(ws: Any, job: dict, rag: Any = None, prefs: Any = None) -> tuple[Any, str]:
    params = job.get("params") or {}
    if job["kind"] == "index":
        if params.get("password"):
            raise StudioError(f"Job {job['id']} indexed a password-protected file and passwords are not kept; add "
                              "the files again from the RAG Chat tab with the password.", field="job_id",
                              key="jobs.retry_password", job_id=str(job["id"]))
        from studio.rag.chunking import ChunkSettings
        from studio.rag.service import RagService
        from studio.settings import parse_settings

        service = rag or RagService(ws)
        chunking = parse_settings(ChunkSettings, params["chunking"]) if params.get("chunking") else None
        return service.jobs, service.start_indexing(params["collection"], params["paths"], params["names"],
                                                    chunking=chunking, embedder=params.get("embedder"))
    if job["kind"] in ("generate", "judge"):
        from studio.prefs.service import PrefService

        service = prefs or PrefService(ws)
        if job["kind"] == "judge":
            return service.jobs, service.judge(params["task_set"], params["judge_target"], params["rubric"])
        from studio.generation import GenerationSettings

        settings = [GenerationSettings(**s) for s in params["settings"]]
        return service.jobs, service.start_generation(params["task_set"], params["prompts"], params["targets"],
                                                      params["k"], settings, overlap=params["overlap"],
                                                      guidelines=params["guidelines"],
                                                      created_by=params["created_by"])
    raise ValueError(f"{job['kind']} jobs are not restarted here")
