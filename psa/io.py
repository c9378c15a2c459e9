"""The files psa writes: atomic output (a temp file in the same folder, then a rename), and
the checked reading of psa's own outputs back.

A killed run therefore never leaves a truncated file behind, and "file exists" means
"file is complete", which is what lets every tool skip finished work on a re-run.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from .constants import voc_palette
from .errors import OutputError, PsaError


def _umask() -> int:
    """The process umask, read without changing it where /proc says it (os.umask can only set it,
    which would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open()` gives a new file under this process's umask (0644 under umask 022)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, file_mode())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise write_error(path, err) from None
        raise


def write_error(path: str | os.PathLike, err: OSError) -> OutputError:
    """One line for an output that could not be written: which file, why, and on a full disk
    how much is free."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"disk full writing {path} ({free_mb(path)} MB free on its disk); nothing of it was "
                           "kept: free space and rerun, finished outputs are kept")
    return OutputError(f"cannot write {path}: {err.strerror or err}")


def free_mb(path: str | os.PathLike) -> int:
    """Free MB on the disk of `path` (or of its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free // 2**20


def atomic_write_with(path: str | os.PathLike, writer: Callable[[io.BytesIO], None]) -> None:
    """Serialise with `writer(buffer)` in memory, then write the bytes atomically."""
    buffer = io.BytesIO()
    writer(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_label_png(path: str | os.PathLike, label: np.ndarray) -> None:
    """A uint8 H×W label map as a VOC palette PNG (pixel value = class index)."""
    image = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
    image.putpalette(voc_palette())
    atomic_write_with(path, lambda buf: image.save(buf, format="PNG"))


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    atomic_write_with(path, lambda buf: np.savez_compressed(buf, **arrays))


def save_image(path: str | os.PathLike, rgb: np.ndarray) -> None:
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    atomic_write_with(path, lambda buf: image.save(buf, format="PNG"))


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Delete leftovers of killed writes (".name.XXXX.tmp"); returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = list(folder.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def ensure_free_space(path: str | os.PathLike, min_mb: int) -> None:
    """Refuse to start when `path` cannot be written (its nearest existing folder), or when
    its disk has less than `min_mb` MB free: a full disk half-way through a stage costs more
    than a clear error before it."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK) or _read_only(probe):
        raise OutputError(f"run.dir {path} is not writable ({probe} does not take new files)")
    if min_mb <= 0:
        return
    free = free_mb(path)
    if free < min_mb:
        raise PsaError(f"only {free} MB free on the disk of {path}; need at least {min_mb} MB "
                       f"(free space, or change recipe key run.min_free_mb)")


def _read_only(folder: Path) -> bool:
    """A read-only mount (or /proc) says W_OK to root: ask the file system itself."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or folder.is_relative_to("/proc")
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------- reading back


def read_label_png(path: str | os.PathLike, what: str, shape: tuple[int, ...] | None = None,
                   against: str = "its image") -> np.ndarray:
    """A label map psa wrote (uint8 H×W): one line naming `what` and the file when it cannot be
    read, or when it is not `shape` (`against` names what the shape is)."""
    try:
        with Image.open(path) as image:
            label = np.array(image)
    except (OSError, ValueError, SyntaxError) as err:
        raise PsaError(f"cannot read {what} {path}: {err}") from None
    if shape is not None and label.shape != tuple(shape):
        raise PsaError(f"{what} {path} is {label.shape}, {against} is {tuple(shape)}")
    return label


def require_files(folder: Path, names: list[str], what: str, hint: str) -> None:
    """Every file of `names` in `folder` (outputs of an earlier step), else one line naming how
    many are missing, the first, and `hint` (which step writes them)."""
    missing = [name for name in names if not (Path(folder) / name).is_file()]
    if missing:
        raise PsaError(f"{what} missing for {len(missing)} of {len(names)} images (first: "
                       f"{Path(folder) / missing[0]}); {hint}")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file psa wrote, or None when it is absent or unreadable (not written yet)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
