"""`studio serve RUN_OR_MODEL [--host H] [--port P] [--api-key KEY]`: an OpenAI-compatible endpoint over a finished
run (merged into its base) or a model, in the foreground until Ctrl-C or `studio jobs cancel ID`; `studio jobs`
lists it as a serve job with its address."""
from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace


def add_serve_parser(sub) -> None:
    serve = sub.add_parser("serve", help="serve a finished run or a model over an OpenAI-compatible API "
                                         "(/v1/chat/completions, streaming)")
    serve.add_argument("source", metavar="RUN_OR_MODEL", help="a run id (or run:<id>, or its name) or a model")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every network)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", default=os.environ.get("STUDIO_SERVE_API_KEY"),
                       help="clients must send 'Authorization: Bearer KEY' (default: STUDIO_SERVE_API_KEY)")
    serve.add_argument("--watch-pid", type=int, default=None, help=argparse.SUPPRESS)  # the app that started it
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from studio.workspace import Workspace

    ws = Workspace.open()
    params = {"source": args.source, "host": args.host, "port": args.port, "api_key": bool(args.api_key)}
    try:
        serve_recorded(ws, args, params)
    except KeyboardInterrupt:  # Ctrl-C or `studio jobs cancel`: the job is recorded as cancelled
        print("stopped", file=sys.stderr)
    return 0


def serve_recorded(ws, args, params: dict) -> None:
    from studio.jobs.records import foreground
    from studio.jobs.worker import pid_alive
    from studio.serving import Server

    with foreground(ws, "serve", f"{args.source} on :{args.port}", params) as job:
        def progress(phase: str) -> None:
            print(phase, file=sys.stderr, flush=True)
            job.records.progress(job.id, None, phase, force=True)

        server = Server(ws, args.source, args.host, args.port, args.api_key, progress=progress)
        job.result = {"url": server.url, "model": server.name}
        print(f"Serving {server.name} at {server.url}; Ctrl-C stops it", flush=True)
        watched = getattr(args, "watch_pid", None)
        server.run(should_stop=lambda: job.records.cancel_asked(job.id) or (watched and not pid_alive(watched)))
        if job.records.cancel_asked(job.id):
            raise KeyboardInterrupt


def retry_serve(ws, job: dict) -> int:
    """`studio jobs retry ID` for a serve job: the same model, address and port (the key is never stored: it comes
    from STUDIO_SERVE_API_KEY again)."""
    from studio.errors import StudioError

    params = dict(job["params"])
    key = os.environ.get("STUDIO_SERVE_API_KEY") if params.get("api_key") else None
    if params.get("api_key") and not key:
        raise StudioError(f"Job {job['id']} served with an API key, which is never stored; set STUDIO_SERVE_API_KEY "
                          f"and retry, or run `studio serve {params['source']} --api-key KEY`.", field="job_id",
                          key="jobs.retry_api_key", job_id=str(job["id"]), source=params["source"])
    args = SimpleNamespace(source=params["source"], host=params["host"], port=params["port"], api_key=key)
    try:
        serve_recorded(ws, args, params)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0
