"""Jobs: the queue that runs training (and later eval, export, indexing) in supervised worker processes.

`JobManager` (in `manager`) is the public face: submit, cancel, resume, status, wait, follow.
`worker` is the spawned process's entry point. See DESIGN.md "Jobs" for the states and guarantees.
"""
from studio.jobs.manager import JobManager, latest_checkpoint

__all__ = ["JobManager", "latest_checkpoint"]
