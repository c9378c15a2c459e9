"""Training checkpoints (Accelerate state: model, optimizer, RNG per rank) and final weights.

A checkpoint directory counts only once its `state.json` exists: it is written last, after
every rank has saved and the temporary directory has been renamed. A killed save therefore
leaves a `.tmp` directory that the next run deletes, never a half checkpoint it would load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..errors import OutputError, PsaError
from ..io import atomic_write_json, atomic_write_with, file_mode, free_mb
from ..version import __version__

STATE_FILE = "state.json"
WEIGHTS_FILE = "model.pt"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def complete_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(folder: Path) -> Path | None:
    found = complete_checkpoints(folder)
    return found[-1] if found else None


def read_state(checkpoint: Path) -> dict:
    try:
        return json.loads((checkpoint / STATE_FILE).read_text())
    except (OSError, ValueError) as err:
        raise PsaError(f"checkpoint {checkpoint} is unreadable ({err})") from None


def remove_incomplete(folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_dir() and not (path / STATE_FILE).is_file():
            shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(accelerator, folder: Path, step: int, state: dict, keep: int) -> Path:
    """Collective: every rank must call it."""
    final = folder / checkpoint_name(step)
    tmp = folder / f"{checkpoint_name(step)}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
    except (OSError, RuntimeError) as err:  # a full disk surfaces as either (torch's zip writer)
        shutil.rmtree(tmp, ignore_errors=True)
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise OutputError(f"cannot write checkpoint {final} ({reason}; {free_mb(folder)} MB free on its disk); "
                          "the earlier checkpoints are kept: free space and rerun to resume") from None
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for path in tmp.rglob("*"):  # the state files get the umask's mode, as every other output
            if path.is_file():
                path.chmod(file_mode())
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        atomic_write_json(final / STATE_FILE, {**state, "step": step})
        for old in complete_checkpoints(folder)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_weights(path: Path, model: torch.nn.Module, meta: dict) -> None:
    """Final weights for the next stages: a plain state dict plus what built the model."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"meta": {**meta, "psa_version": __version__}, "state_dict": state}
    atomic_write_with(path, lambda buf: torch.save(payload, buf))


def load_weights(path: Path, task: str, backbone: str) -> tuple[dict, dict]:
    """Load `model.pt` safely (`weights_only=True`) and check it belongs to this task/backbone."""
    if not path.is_file():
        raise PsaError(f"checkpoint not found: {path} (train the {task} stage first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, corrupt, or a pickle with code in it
        raise PsaError(f"cannot load checkpoint {path}: {unloadable(err)}") from None
    if not isinstance(payload, dict) or "meta" not in payload or "state_dict" not in payload:
        raise PsaError(f"checkpoint {path} is not a psa model file")
    meta = payload["meta"]
    if meta.get("task") != task:
        raise PsaError(f"checkpoint {path} is a {meta.get('task')!r} model, this step needs a {task!r} model")
    if meta.get("backbone") != backbone:
        raise PsaError(f"checkpoint {path} was trained with backbone {meta.get('backbone')!r}, "
                       f"the recipe says model.backbone={backbone!r}")
    return payload["state_dict"], meta


def unloadable(err: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in a few words: a pickle that would
    run code is named as such (torch's own message goes on to suggest turning the check off)."""
    text = str(err)
    if "Weights only load failed" in text or "Unsupported global" in text or "UnpicklingError" in type(err).__name__:
        return "it holds pickled objects other than tensors (code could run on loading), which psa does not load"
    first = (text.strip().splitlines() or [type(err).__name__])[0]
    return first if len(first) <= 200 else first[:197] + "..."
