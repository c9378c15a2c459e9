"""One run per run folder: a command that writes into `run.dir` holds its lock until it ends.

The lock is an exclusive `flock` on a file named after the run folder's resolved path in the
temporary folder (nothing is written into the run folder for it, so a refused or failed
command leaves none behind). The kernel releases it when its process ends, however it ends;
the file keeps the holder's pid, host and command for the message a second command gets, and
is emptied on release. A file still naming a process that is gone (killed) is taken over, with
one line saying so. Only the main process of a launch takes it: the others work for the same
run. Across machines a lock on one machine's temporary folder does not reach the other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from ..engine.report import is_main_process
from ..errors import PsaError

_HELD: dict[str, tuple[int, int]] = {}  # lock file -> (open fd, how many holds)


def lock_file(run_dir: str | os.PathLike) -> Path:
    key = hashlib.sha256(str(Path(run_dir).expanduser().resolve()).encode("utf-8")).hexdigest()[:20]
    # per user: a folder another user made first would refuse our lock files
    return Path(tempfile.gettempdir()) / f"psa-locks-{os.getuid()}" / f"{key}.lock"


def acquire(run_dir: str | os.PathLike) -> Optional[str]:
    """Hold `run_dir`'s lock (again, if this process holds it already). → one line for the log
    when the lock of a process that is gone was taken over, else None. Another live process
    holding it: PsaError naming it."""
    if not is_main_process():
        return None
    path = lock_file(run_dir)
    if str(path) in _HELD:
        fd, count = _HELD[str(path)]
        _HELD[str(path)] = (fd, count + 1)
        return None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd)
        for _ in range(50):  # it may hold the lock and not have written its name yet
            if holder:
                break
            time.sleep(0.01)
            holder = _read(fd)
        os.close(fd)
        raise PsaError(f"run.dir {run_dir} is in use by another psa command ({_describe(holder)}); "
                       "wait for it to end, or use another run.dir") from None
    previous = _read(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime(
        "%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv), "run_dir": str(run_dir)}).encode("utf-8"), 0)
    _HELD[str(path)] = (fd, 1)
    if previous and not _alive(previous):
        return f"run.dir {run_dir} was locked by {_describe(previous)}, which is gone: took its lock over"
    return None


def release(run_dir: str | os.PathLike) -> None:
    path = str(lock_file(run_dir))
    if path not in _HELD:
        return
    fd, count = _HELD.pop(path)
    if count > 1:
        _HELD[path] = (fd, count - 1)
        return
    _unlock(fd)


def release_all() -> None:
    """At the end of a command, whatever its holds."""
    while _HELD:
        _, (fd, _) = _HELD.popitem()
        _unlock(fd)


def _unlock(fd: int) -> None:
    os.ftruncate(fd, 0)  # released cleanly: nobody to take over from
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _read(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8")
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


def _alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # cannot tell: assume it runs
    try:
        pid = int(holder.get("pid", 0))
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict) -> str:
    if not holder:
        return "a process that has not said which"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}: {holder.get('command')}"
