"""Getting an export off this machine: push it to the Hugging Face Hub, or zip it for a download.

`push_to_hub` needs a token and a reachable hub; without either it says so in one sentence and nothing is sent.
`zip_export` writes `<folder>.zip` beside the exports (a temp name renamed when complete, like every export).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from studio.errors import StudioError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def push_to_hub(folder: Path, repo_id: str, token: str | None, private: bool = True) -> str:
    """Upload `folder` to the model repo `repo_id` (created if missing); returns the repo's URL."""
    from studio.models.catalogue import is_offline

    token = (token or os.environ.get("HF_TOKEN") or "").strip()
    repo_id = (repo_id or "").strip()
    if not REPO_ID.match(repo_id):
        raise StudioError(f"'{repo_id}' is not a Hub repository id; write it as owner/name, e.g. "
                          "my-team/support-bot.", field="repo_id", key="export.hub.repo_id", repo_id=repo_id)
    if not token:
        raise StudioError("Pushing to the Hugging Face Hub needs an access token with write permission; paste one "
                          "(huggingface.co/settings/tokens) or download the zip instead.", field="token",
                          key="export.hub.no_token")
    if is_offline():
        raise StudioError("The Hugging Face Hub cannot be reached from this machine (offline); download the zip "
                          "instead and upload it from a connected machine.", field="token", key="export.hub.offline")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="Upload from Fine-tuning Studio", ignore_patterns=[".*"])
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        reason = "the token was refused" if status in (401, 403) else f"the Hub answered {status or error}"
        raise StudioError(f"Pushing to '{repo_id}' failed: {reason}; check the token's write permission and the "
                          "repository name.", field="token", key="export.hub.failed", repo_id=repo_id,
                          reason=reason) from None
    return f"https://huggingface.co/{repo_id}"


def zip_export(folder: Path, dest_dir: Path | None = None) -> Path:
    """`folder` as a zip file (for the browser's download button); returns its path."""
    folder = Path(folder)
    if not (folder / "export.json").exists():
        raise StudioError(f"{folder} is not a finished export; export first, then download it.", field="export",
                          key="export.hub.not_export", folder=str(folder))
    dest_dir = Path(dest_dir or folder.parent / "zips")
    dest_dir.mkdir(parents=True, exist_ok=True)
    base = dest_dir / f".{folder.name}.partial-{time.time_ns()}"
    made = Path(shutil.make_archive(str(base), "zip", root_dir=folder.parent, base_dir=folder.name))
    final = dest_dir / f"{folder.name}.zip"
    made.replace(final)
    return final
