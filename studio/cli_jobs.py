"""`studio jobs`: the background work of every kind (training, exports...), from the app and from the terminal.

`studio jobs [--json] [--kind K] [--active]` lists them newest first; `studio jobs show ID` gives one with
its request and result; `studio jobs cancel ID` asks the process that runs it to stop (a training job
checkpoints first); `studio jobs retry ID` runs an interrupted, failed or cancelled job again: a training
job is resumed from its last checkpoint, an export, an index, a candidate generation, a judge or an
evaluation job is run again here in the foreground.
"""
from __future__ import annotations

import json
import time

from studio.errors import StudioError

COLUMNS = ("id", "kind", "status", "progress", "phase", "title", "devices", "owner", "started")


def _records():
    from studio.jobs.records import JobRecords
    from studio.workspace import Workspace

    return JobRecords(Workspace.open())


def _row(job: dict) -> dict:
    progress = job.get("progress")
    started = job.get("started_at") or job.get("created_at")
    return {"id": job["id"], "kind": job["kind"], "status": job["status"],
            "progress": f"{progress * 100:.0f}%" if progress is not None else "",
            "phase": (job.get("phase") or "")[:40], "title": (job.get("title") or "")[:50],
            "devices": job.get("devices") or "", "owner": job.get("owner") or "",
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)) if started else ""}


def cmd_list(args) -> int:
    from studio.cli_common import table as _table

    jobs = _records().list(kind=args.kind, active_only=args.active)
    if args.json:
        print(json.dumps(jobs, indent=2, default=str))
        return 0
    if not jobs:
        print("No jobs." if not args.active else "No job is queued or running.")
        return 0
    print(_table([_row(j) for j in jobs], list(COLUMNS)))
    return 0


def cmd_show(args) -> int:
    job = _records().get(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2, default=str))
        return 0
    for key in ("id", "kind", "status", "phase", "progress", "title", "devices", "owner", "run_id", "pid", "seconds",
                "error"):
        if job.get(key) not in (None, ""):
            print(f"{key}: {job[key]}")
    for key in ("params", "result"):
        if job.get(key):
            print(f"{key}: {json.dumps(job[key], default=str)}")
    return 0


def cmd_cancel(args) -> int:
    records = _records()
    job = records.get(args.job_id)
    if job["kind"] == "train":
        from studio.jobs import JobManager

        JobManager(records.ws).cancel(job["run_id"])
        print(f"Job {job['id']}: asked to stop after the current step; it keeps a checkpoint.")
        return 0
    from studio.jobs import threads

    job = threads.cancel(records, job["id"])
    print(f"Job {job['id']}: {job['status']}.")
    return 0


def cmd_retry(args) -> int:
    records = _records()
    job = records.get(args.job_id)
    from studio.jobs.records import check_retryable

    check_retryable(job)
    if job["kind"] == "train":
        from studio.cli_common import follow_run
        from studio.jobs import JobManager

        manager = JobManager(records.ws).start()
        manager.resume(job["run_id"])
        return follow_run(manager, job["run_id"], job["run_id"])
    if job["kind"] == "export":
        from studio.cli_export import export_recorded
        from studio.export.pipeline import retry_request

        manifest = export_recorded(records.ws, retry_request(job["params"]))
        print(manifest["artifact"])
        return 0
    if job["kind"] == "evaluate":
        from studio.evaluation import evaluate_recorded
        from studio.jobs.retry import evaluation_request

        targets, dataset, options = evaluation_request(job)
        result = evaluate_recorded(records.ws, targets, dataset, **options)
        print(json.dumps({"saved": str(result["saved"]), "rows": result["rows"]}, ensure_ascii=False, default=str))
        return 0
    if job["kind"] == "serve":
        from studio.cli_serve import retry_serve

        return retry_serve(records.ws, job)
    from studio.jobs.retry import THREAD_KINDS, restart

    if job["kind"] in THREAD_KINDS:
        jobs, new_id = restart(records.ws, job)
        return _follow(jobs, new_id)
    raise StudioError(f"Job {job['id']} ({job['kind']}) cannot be retried from here: start it again from its tab.",
                      field="job_id", key="jobs.not_retryable", job_id=str(job["id"]), kind=job["kind"],
                      why="start it again from its tab")


def cmd_skip_eval(args) -> int:
    from studio.jobs import JobManager

    records = _records()
    job = records.get(args.job_id)
    if job["kind"] != "train":
        raise StudioError(f"Job {job['id']} is a {job['kind']} job; only a training job has evaluations to skip.",
                          field="job_id", key="jobs.skip_not_train", job_id=str(job["id"]), kind=job["kind"])
    JobManager(records.ws).skip_evaluation(job["run_id"])
    print(f"Job {job['id']}: its evaluation stops after the batch in progress; training goes on.")
    return 0


def _follow(jobs, job_id: str) -> int:
    """Wait for a job run on a thread of this process, showing its phase; 0 when it completed."""
    import sys

    print(f"job {job_id} started", file=sys.stderr)
    job = jobs.jobs[job_id]
    while job.active:
        print(f"\r  {job.phase or job.state}".ljust(60), end="", file=sys.stderr, flush=True)
        time.sleep(0.5)
    print(file=sys.stderr)
    if job.state != "completed":
        raise job.error or StudioError(f"Job {job_id} ended {job.state}.", field="job_id", key="jobs.ended_as",
                                       job_id=job_id, status=job.state)
    print(json.dumps({"id": int(job_id), "kind": job.kind, "status": job.state, "result": job.summary()},
                     ensure_ascii=False, default=str))
    return 0


def add_jobs_parser(sub) -> None:
    jobs = sub.add_parser("jobs", help="background work of every kind (training, exports...): list, show, cancel, "
                                       "retry")
    jobs.add_argument("--json", action="store_true")
    from studio.jobs.records import KINDS

    jobs.add_argument("--kind", default=None, choices=KINDS)
    jobs.add_argument("--active", action="store_true", help="only queued and running jobs")
    jobs.set_defaults(func=cmd_list)
    jsub = jobs.add_subparsers(dest="jobs_command")
    show = jsub.add_parser("show", help="one job with its request, result and error")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    cancel = jsub.add_parser("cancel", help="stop a running job (training checkpoints first)")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_cancel)
    skip = jsub.add_parser("skip-eval", help="cut a training job's evaluation in progress short; training goes on")
    skip.add_argument("job_id")
    skip.set_defaults(func=cmd_skip_eval)
    retry = jsub.add_parser("retry", help="run an interrupted, failed or cancelled job again (training resumes "
                                          "from its last checkpoint)")
    retry.add_argument("job_id")
    retry.set_defaults(func=cmd_retry)
