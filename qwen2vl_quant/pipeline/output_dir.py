"""Where a run writes, and what it may touch there: nothing the user had is lost.

- A run writes into ``.OUT.partial`` beside OUT_DIR (same filesystem) and renames it into
  place when complete, so a run that dies never leaves a complete-looking OUT_DIR.
- Every output we publish lists its files in ``written_by_qwen2vl_quant.json``.
  ``--overwrite`` replaces OUT_DIR only when every entry in it is listed there: a folder
  holding anything else (a user's notes, a checkpoint of another tool) is refused.
- A partial run is never deleted silently: without ``--resume`` a rerun is refused, with a
  line that says how to continue it or start over.
- One run per output: ``.OUT.lock`` beside OUT_DIR is held with ``flock`` for the whole run.
  The kernel drops the lock when its process dies, so a killed run's lock is taken over
  by the next run; a live one makes the next run stop with a line naming its process.

Imports nothing heavy: the CLI runs these checks before it loads torch.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from .. import __version__
from ..errors import OutputError

MANIFEST = "written_by_qwen2vl_quant.json"
STATE_FILE = "state.json"  # in the partial folder: the resume state (pipeline/staging.py)


def staging_path(out_dir: Path) -> Path:
    out_dir = Path(out_dir).absolute()
    return out_dir.parent / f".{out_dir.name}.partial"


def lock_path(out_dir: Path) -> Path:
    out_dir = Path(out_dir).absolute()
    return out_dir.parent / f".{out_dir.name}.lock"


def check_output_dir(out_dir: Path, overwrite: bool, inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, an OUT_DIR that would clobber the input, the current
    directory, or anything not written by us; create its parent like ``mkdir -p``."""
    out = Path(out_dir).resolve()
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise OutputError(f"output {out_dir} is the current directory or contains it; name a new directory, "
                          f"e.g. {out_dir}/quantized")
    for source in inputs:
        source = Path(source).resolve()
        if out == source or source in out.parents or out in source.parents:
            raise OutputError(f"output {out_dir} overlaps the input model {source}; choose another directory")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        _check_replaceable(out_dir, overwrite)
    if not out.parent.exists():
        try:
            out.parent.mkdir(parents=True)
        except OSError as exc:
            raise OutputError(f"cannot create the parent directory of {out_dir}: {exc.strerror}") from exc
    if not out.parent.is_dir():
        raise OutputError(f"{out.parent} is not a directory")
    if not os.access(out.parent, os.W_OK):
        raise OutputError(f"cannot write to {out.parent}")


def _check_replaceable(out_dir: Path, overwrite: bool) -> None:
    foreign = foreign_entries(out_dir)
    if foreign is None:
        raise OutputError(f"output directory {out_dir} is not empty and is not an output of qwen2vl-quant; "
                          "choose another directory")
    if foreign:
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"output directory {out_dir} holds files qwen2vl-quant did not write ({listed}); "
                          "move them or choose another directory")
    if not overwrite:
        raise OutputError(f"output directory {out_dir} holds an earlier output; pass --overwrite to replace it")


def foreign_entries(directory: Path) -> list[str] | None:
    """Entries of ``directory`` not listed in its manifest (sorted), or None when it has no
    readable manifest, i.e. it is not an output of ours."""
    try:
        listed = set(json.loads((directory / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir()
                  if p.name != MANIFEST and (p.name not in listed or not p.is_file()))


def write_manifest(directory: Path) -> None:
    """List every file of a finished output (written last, just before it is published)."""
    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST)
    write_json(directory / MANIFEST, {"tool": f"qwen2vl-quant {__version__}", "files": files})


def fresh_staging(out_dir: Path) -> Path:
    """An empty partial folder for a run that cannot resume (save_quantized, demo-model)."""
    check_partial(out_dir, resume=False)
    staging = staging_path(out_dir)
    if staging.exists():
        shutil.rmtree(staging)  # no finished work in it (check_partial)
    staging.mkdir()
    return staging


def publish(staging: Path, out_dir: Path) -> None:
    """Move a finished staging directory into place, replacing an earlier output of ours.

    The check is repeated here because hours may have passed since the run started."""
    out_dir = Path(out_dir).absolute()
    if out_dir.is_dir() and any(out_dir.iterdir()):
        _check_replaceable(out_dir, overwrite=True)
    old = out_dir.parent / f".{out_dir.name}.old"
    if old.exists():
        shutil.rmtree(old)  # our own leftover: a publish died between the two renames
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old.exists():
        shutil.rmtree(old)


# -- partial runs ----------------------------------------------------------------------------


def read_partial_state(out_dir: Path) -> dict | None:
    """The resume state of OUT_DIR's partial folder, or None when it has none."""
    try:
        return json.loads((staging_path(out_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def has_resumable_work(state: dict | None) -> bool:
    return bool(state) and (int(state.get("finished_layers", 0)) > 0 or bool(state.get("captured")))


def describe_partial(out_dir: Path) -> str | None:
    """What a partial run of OUT_DIR holds, in words, or None when there is none."""
    partial = staging_path(out_dir)
    if not partial.exists():
        return None
    state = read_partial_state(out_dir)
    if not has_resumable_work(state):
        return f"{partial} holds no finished work"
    finished, total = int(state.get("finished_layers", 0)), state.get("total_layers")
    layers = f"{finished} of {total} layers" if total else f"{finished} layers"
    return f"{partial} holds a partial run: calibration inputs captured, {layers} finished"


def check_partial(out_dir: Path, resume: bool) -> None:
    """Refuse to start over a partial run without --resume, and --resume without one.

    A partial folder with no finished work (a run stopped while loading) is not worth
    keeping: the new run replaces it (pipeline/staging.py)."""
    partial = staging_path(out_dir)
    if not partial.exists():
        if resume:
            raise OutputError(f"nothing to resume: no partial run of {out_dir} ({partial} does not exist)")
        return
    if not resume and has_resumable_work(read_partial_state(out_dir)):
        raise OutputError(f"{describe_partial(out_dir)}; add --resume to continue it, or delete {partial} "
                          "to start over")


def interrupted_message(out_dir: Path) -> str:
    """What to tell a user who pressed Ctrl-C: what is resumable and where it is."""
    partial = staging_path(out_dir)
    state = read_partial_state(out_dir)
    if not has_resumable_work(state):
        return "interrupted before any work was saved; nothing to resume (rerun the same command to start again)"
    return f"interrupted; {describe_partial(out_dir)}. Rerun the same command with --resume to continue, or " \
           f"delete {partial} to start over"


# -- one run per output ----------------------------------------------------------------------


class OutputLock:
    """Exclusive lock on OUT_DIR for one run (``with OutputLock(out_dir): ...``)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = lock_path(out_dir)
        self._file = None

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise OutputError(f"another qwen2vl-quant run (process {holder}) is writing {self.out_dir}; "
                                  "wait for it to finish or stop it") from None
            # A finishing run unlinks the file after we opened it: then we hold a lock on a
            # file nobody else will open, so start again on the current one.
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc_info) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()
            self._file = None


def write_json(path: Path, data: dict) -> None:
    """Write JSON through a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
