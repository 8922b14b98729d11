"""Importing a large JSONL: streamed through the builder vs loaded whole, peak memory and speed.

Writes a synthetic instruction JSONL of `--mb` megabytes, then in two fresh processes
(a) imports it as a studio dataset (read, map, clean, dedupe, split, Parquet) and
(b) loads it naively (`[json.loads(l) for l in f]`, what a script without streaming does).
Prints rows/s, MB/s and peak RSS of each, and the ratio of peak RSS to the file size.

    .venv/bin/python bench/import_large.py [--mb 300]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDIO = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from studio.workspace import Workspace
from studio.data.builder import ImportRequest, import_dataset
from studio.data.cleaning import SplitConfig
t = time.perf_counter()
r = import_dataset(Workspace.open({home!r}), ImportRequest(source={path!r}, name="big", split=SplitConfig(validation=0.01)))
print(json.dumps({{"rows": r.imported, "s": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
NAIVE = """
import json, resource, time
t = time.perf_counter()
rows = [json.loads(line) for line in open({path!r}, encoding="utf-8")]
print(json.dumps({{"rows": len(rows), "s": time.perf_counter() - t,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write_jsonl(path: Path, mb: int) -> int:
    n, size, target = 0, 0, mb * 1024 * 1024
    with open(path, "w", encoding="utf-8") as out:
        while size < target:
            line = json.dumps({"instruction": f"Explain item {n} of the catalogue in plain words.",
                               "input": "", "output": f"Item {n} is " + "a useful thing, " * 20}) + "\n"
            out.write(line)
            size += len(line)
            n += 1
    return n


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        rows = write_jsonl(path, a.mb)
        mb = path.stat().st_size / 1024 / 1024
        studio = run(STUDIO.format(root=str(ROOT), home=str(Path(tmp) / "home"), path=str(path)))
        naive = run(NAIVE.format(path=str(path)))
    print(f"{mb:.0f} MB JSONL, {rows:,} rows")
    print(f"{'':14} {'rows/s':>10} {'MB/s':>7} {'peak RSS MB':>12} {'RSS / file':>10}")
    for name, r in (("studio import", studio), ("naive load", naive)):
        print(f"{name:14} {r['rows'] / r['s']:10.0f} {mb / r['s']:7.1f} {r['rss_mb']:12.0f} {r['rss_mb'] / mb:10.2f}")
    print(f"peak RSS ratio studio / naive: {studio['rss_mb'] / naive['rss_mb']:.2f} "
          "(the studio import also cleans, dedupes, splits and writes Parquet)")


if __name__ == "__main__":
    main()
