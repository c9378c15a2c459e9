"""The interface every dataset layout implements, and the checked file readers they share.

A *source* is an ordered list of image ids with, per index, an RGB image, image-level class
labels and (optionally) a ground-truth mask. Index 0 of `classes` is the background; masks
use 255 for "void / ignore". Every problem with the files on disk surfaces as a one-line
`PsaError` that names the offending file or id.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable, Optional, Sequence

import numpy as np
from PIL import Image

from ..constants import IGNORE_INDEX
from ..errors import PsaError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


@dataclass
class InstanceMasks:
    """The object instances of one image."""

    masks: np.ndarray  # bool N×H×W
    labels: np.ndarray  # int64 N: class index (1..K-1) of each


def instances_from_ids(ids: np.ndarray, classes: np.ndarray) -> InstanceMasks:
    """An instance-id map (0 background, 255 void, k = instance k) and a class map → masks,
    each instance's class being the most frequent class under it."""
    found = [k for k in np.unique(ids) if k not in (0, IGNORE_INDEX)]
    masks = np.stack([ids == k for k in found]) if found else np.zeros((0, *ids.shape), dtype=bool)
    labels = [np.bincount(classes[m][classes[m] != IGNORE_INDEX], minlength=1).argmax() for m in masks]
    return InstanceMasks(masks, np.asarray(labels, dtype=np.int64))


class SegmentationSource:
    """Base class: subclasses set `classes` and `ids` and implement the loaders. File-backed
    layouts define `image_path(index)` and inherit the image loaders below."""

    classes: tuple[str, ...] = ("background",)
    classes_from: str = ""  # where `classes` came from, for messages: "recipe key data.classes", a file
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        """Number of classes including the background."""
        return len(self.classes)

    @property
    def has_masks(self) -> bool:
        return False

    def load_image(self, index: int) -> np.ndarray:
        """uint8 H×W×3 RGB, C-contiguous."""
        return read_rgb(self.image_path(index))

    def load_mask(self, index: int) -> np.ndarray:
        """uint8 H×W with values in 0..num_classes-1 or 255."""
        raise PsaError(f"{type(self).__name__} has no ground-truth masks (image {self.ids[index]})")

    @property
    def has_instances(self) -> bool:
        """Ground-truth object instances for every image (VOC's SegmentationObject/)."""
        return False

    def load_instances(self, index: int) -> InstanceMasks:
        raise PsaError(f"{type(self).__name__} has no ground-truth instances (image {self.ids[index]})")

    def image_labels(self, index: int) -> np.ndarray:
        """Sorted unique int64 foreground class ids (1..num_classes-1); never empty."""
        raise NotImplementedError

    def image_size(self, index: int) -> tuple[int, int]:
        """(H, W) of image `index`, from the file header only."""
        return read_size(self.image_path(index))

    def identity(self) -> dict:
        """What the provenance data identity must hold besides the ids and classes: the
        fingerprints of annotation files whose content the ids alone do not pin down."""
        return {}

    def content_identity(self) -> dict[str, str]:
        """What the split's files hold, for provenance records ({"labels": ..., "masks": ...,
        "images": ...}), without decoding an image. Generated sources have no files: {}."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {self.num_classes} classes)"


# ----------------------------------------------------------------------------- content identity

# (path, size, mtime) -> sha256 of the file: a file is read once per process while it is
# unchanged, so checking a finished stage again costs a stat per file, not a read
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, cached by size and mtime."""
    path = os.fspath(path)
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


class FolderIndex:
    """The names in a folder, listed once: finding a split's files costs one listing, not a
    stat per candidate name (ids with a '/' are looked up one by one)."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            self.names = set(os.listdir(folder))
        except OSError:
            self.names = set()

    def find(self, name: str) -> Optional[str]:
        path = os.path.join(self.folder, name)
        if "/" in name or "\\" in name:
            return path if os.path.isfile(path) else None
        return path if name in self.names else None


def content_identity(ids: Sequence[str], labels: Sequence[Optional[str]], masks: Sequence[Optional[str]],
                     images: Sequence[Optional[str]], label_files: str) -> dict[str, str]:
    """Per split: the image labels (`labels[i]`: a text standing for image i's labels, None
    when they come from its mask), the masks and the images, all by content. The images by
    content, not by size and mtime: a data set copied or mounted anew keeps its trained stages
    (an edited photo still retrains them). That is a read of every photo once per process
    (VOC's 17k JPEGs: ~2 GB). Each value names where it comes from, so a changed record says
    which file changed."""
    label_hash, mask_hash, image_hash = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    labelled = with_masks = 0
    for image_id, label, mask, image in zip(ids, labels, masks, images):
        if label is not None:
            label_hash.update(f"{image_id}\t{label}\n".encode("utf-8"))
            labelled += 1
        if mask is not None:
            mask_hash.update(f"{image_id}\t{file_digest(mask)}\n".encode("utf-8"))
            with_masks += 1
        try:
            digest = file_digest(image) if image is not None else "missing"
        except OSError:
            digest = "missing"
        image_hash.update(f"{image_id}\t{digest}\n".encode("utf-8"))
    identity = {"images": f"{len(ids)} images by content, sha256 {image_hash.hexdigest()[:12]}"}
    if labelled:
        identity["labels"] = f"{label_files}: {labelled} images, sha256 {label_hash.hexdigest()[:12]}"
    if with_masks:
        identity["masks"] = f"{with_masks} masks, sha256 {mask_hash.hexdigest()[:12]}"
    return identity


# ----------------------------------------------------------------------------- readers


def _reason(err: BaseException) -> str:
    if isinstance(err, FileNotFoundError):
        return "file not found"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _open_loaded(path: Path, what: str) -> Image.Image:
    check_regular(path, what)
    try:
        image = Image.open(path)
        check_pixels(image, path, what)  # from the header, before a byte is decoded
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise PsaError(f"cannot read {what} {path}: {_reason(err)}") from None
    return image


def check_pixels(image: Image.Image, path: Path, what: str = "image") -> None:
    """An image of more pixels than PIL decodes without its decompression-bomb warning
    (`PIL.Image.MAX_IMAGE_PIXELS`) is refused before it is decoded: a small file can ask for
    gigabytes."""
    if image.width * image.height > (Image.MAX_IMAGE_PIXELS or float("inf")):
        raise PsaError(f"cannot read {what} {path}: {image.width}x{image.height} is more than the "
                       f"{Image.MAX_IMAGE_PIXELS} pixels psa decodes (PIL.Image.MAX_IMAGE_PIXELS)")


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Any PIL-readable image (grayscale, palette, RGBA, CMYK...) as uint8 H×W×3 RGB."""
    path = Path(path)
    image = _open_loaded(path, "image")
    try:
        if image.mode != "RGB":
            image = image.convert("RGB")
        array = np.array(image, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise PsaError(f"cannot read image {path}: {_reason(err)}") from None
    if array.ndim != 3 or array.shape[2] != 3:
        raise PsaError(f"cannot read image {path}: decoded to shape {array.shape}")
    return np.ascontiguousarray(array)


def check_files(source: "SegmentationSource", labels: bool = False, masks: bool = False) -> None:
    """Pre-flight before a training run writes anything: every image decodes to its last byte
    (JPEGs at 1/8 scale: still every byte, so truncation is caught, at a fraction of the cost),
    and with `labels` / `masks` its image labels / its mask are valid. A bad file then stops the
    run with one line naming it, not hours later at its batch. Generated sources (no
    `image_path`) have no files to check."""
    image_path = getattr(source, "image_path", None)
    if image_path is None:
        return
    for index in range(len(source)):
        path = Path(image_path(index))
        check_regular(path, "image")
        try:
            with Image.open(path) as image:
                check_pixels(image, path)
                image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            raise PsaError(f"cannot read image {path}: {_reason(err)}") from None
        if labels:
            source.image_labels(index)
        if masks:
            source.load_mask(index)


def read_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) from the image header only."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise PsaError(f"cannot read image {path}: {_reason(err)}") from None
    return height, width


def read_raw_mask(path: str | os.PathLike) -> np.ndarray:
    """The stored indices of a label PNG as uint8 H×W (palette indices for "P", not colours)."""
    path = Path(path)
    image = _open_loaded(path, "mask")
    if image.mode in ("P", "L"):
        array = np.array(image)
    elif image.mode == "1":
        array = np.asarray(image).astype(np.uint8)
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        wide = np.asarray(image)
        if wide.size and (wide.min() < 0 or wide.max() > 255):
            bad = int(wide.max()) if wide.max() > 255 else int(wide.min())
            raise PsaError(f"mask {path} has value {bad}, which does not fit a class index (0..255)")
        array = wide.astype(np.uint8)
    else:
        raise PsaError(f"mask {path} has PIL mode {image.mode}; expected a palette (P) or "
                       f"grayscale (L) PNG of class indices")
    return np.ascontiguousarray(array, dtype=np.uint8)


def check_mask_values(mask: np.ndarray, num_classes: int, path: str | os.PathLike) -> None:
    """Values must be < num_classes or == 255."""
    bad = (mask >= num_classes) & (mask != IGNORE_INDEX)
    if bad.any():
        value = int(mask[bad].min())
        raise PsaError(f"mask {path} has value {value}, outside 0..{num_classes - 1} and not "
                       f"{IGNORE_INDEX}")


def check_mask_size(mask: np.ndarray, image_size: Sequence[int], path: str | os.PathLike) -> None:
    if tuple(mask.shape[:2]) != tuple(image_size):
        h, w = mask.shape[:2]
        raise PsaError(f"mask {path} is {h}x{w} (HxW) but its image is "
                       f"{image_size[0]}x{image_size[1]}")


def read_mask(path: str | os.PathLike, num_classes: Optional[int] = None,
              image_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """A label PNG as uint8 H×W, checked against the image size and the class count."""
    mask = read_raw_mask(path)
    if image_size is not None:
        check_mask_size(mask, image_size, path)
    if num_classes is not None:
        check_mask_values(mask, num_classes, path)
    return mask


def labels_from_mask(mask: np.ndarray) -> np.ndarray:
    """The foreground classes present in a mask (0 and 255 excluded), sorted int64."""
    present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    return present[(present != 0) & (present != IGNORE_INDEX)].astype(np.int64)


def finish_labels(labels: Iterable[int], num_classes: int, image_id: str, where: str) -> np.ndarray:
    """Sorted unique int64 labels; PsaError naming the id and `where` if empty or out of range."""
    array = np.unique(np.asarray(list(labels), dtype=np.int64))
    if array.size == 0:
        raise PsaError(f"image {image_id} has no foreground class label ({where})")
    bad = array[(array < 1) | (array >= num_classes)]
    if bad.size:
        raise PsaError(f"image {image_id}: class id {int(bad[0])} out of range 1..{num_classes - 1} "
                       f"({where})")
    return array


# ----------------------------------------------------------------------------- ids / classes


def _is_absolute(text: str) -> bool:
    return (text.startswith(("/", "\\")) or PurePosixPath(text).is_absolute()
            or PureWindowsPath(text).is_absolute() or bool(PureWindowsPath(text).drive))


def check_id(image_id: str, where: str) -> None:
    if not image_id or not image_id.strip():
        raise PsaError(f"{where}: empty image id")
    if image_id != image_id.strip() or any(ch in image_id for ch in "\r\n\t\x00"):
        raise PsaError(f"{where}: image id {image_id!r} contains whitespace or control characters")
    if _is_absolute(image_id):
        raise PsaError(f"{where}: image id {image_id!r} is an absolute path")
    parts = image_id.replace("\\", "/").split("/")
    if ".." in parts or ".." in image_id:
        raise PsaError(f"{where}: image id {image_id!r} contains '..'")


def validate_ids(ids: Sequence[str], where: str | os.PathLike) -> list[str]:
    """Reject empty, duplicate, absolute and `..` ids; `where` (the list file) is named."""
    where = str(where)
    seen: set[str] = set()
    for image_id in ids:
        check_id(image_id, where)
        if image_id in seen:
            raise PsaError(f"{where}: duplicate image id {image_id!r}")
        seen.add(image_id)
    if not ids:
        raise PsaError(f"{where}: no image ids")
    return list(ids)


def check_classes(classes: Sequence[str], where: str) -> tuple[str, ...]:
    names = tuple(str(name).strip() for name in classes)
    if len(names) < 2:
        raise PsaError(f"{where}: needs the background plus at least one class, got {len(names)} names")
    if len(names) > IGNORE_INDEX:
        raise PsaError(f"{where}: at most {IGNORE_INDEX} classes fit a uint8 mask, got {len(names)}")
    for name in names:
        if not name:
            raise PsaError(f"{where}: empty class name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PsaError(f"{where}: duplicate class name {dupes[0]!r}")
    return names


def check_regular(path: Path, what: str) -> None:
    """A regular file (a FIFO or a device would block or never end), readable; else one line."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise PsaError(f"cannot read {what} {path}: {_reason(err)}") from None
    if not stat.S_ISREG(mode):
        raise PsaError(f"cannot read {what} {path}: not a regular file")


def read_classes_file(path: Path) -> tuple[str, ...]:
    """`classes.txt`: one name per line, line k = class index k; blank lines at the end ignored."""
    check_regular(path, "class list")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise PsaError(f"cannot read class list {path}: {_reason(err)}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return check_classes(lines, str(path))


def read_text_lines(path: Path, what: str) -> list[str]:
    check_regular(path, what)
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise PsaError(f"cannot read {what} {path}: {_reason(err)}") from None


def check_root(root: str | os.PathLike, layout: str) -> Path:
    if root is None or str(root).strip() == "":
        raise PsaError(f"data.root is empty: set it to the {layout} dataset folder")
    path = Path(root).expanduser()
    try:
        found = path.is_dir()
    except OSError as err:
        raise PsaError(f"data root {path} cannot be read: {_reason(err)} (recipe key data.root)") from None
    if not found:
        raise PsaError(f"data root {path} does not exist or is not a folder (recipe key data.root)")
    if not os.access(path, os.R_OK | os.X_OK):
        raise PsaError(f"data root {path} cannot be read: permission denied (recipe key data.root)")
    return path
