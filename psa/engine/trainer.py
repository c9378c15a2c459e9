"""The training loop every stage shares: Accelerate DDP/AMP, poly LR, checkpoints, resume,
TensorBoard, clean stop on SIGINT/SIGTERM, and a hard stop on a non-finite loss."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import Recipe, TrainConfig
from ..errors import PsaError
from ..io import atomic_write_json, ensure_free_space, remove_stale_temp_files
from ..layout import StageFolder
from ..version import __version__
from .accel import check_global_batch, make_accelerator
from .checkpoints import latest_checkpoint, read_state, remove_incomplete, save_checkpoint, save_weights, unloadable
from .ema import WeightAverage
from .optim import build_optimizer, set_poly_lr
from .report import Reporter
from .seeded import SeededAugmentation
from .side_stream import SideData, SideStream

LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict]]
PreviewFn = Callable[[nn.Module, dict], dict[str, np.ndarray]]


@dataclass
class Trainable:
    """What a training step's builder makes once the Accelerator exists: the model, its data,
    its loss."""

    name: str
    model: nn.Module
    dataset: Dataset
    loss_fn: LossFn  # (model, batch) -> (loss, scalars to log)
    meta: dict = field(default_factory=dict)  # stored with the final weights (classes, backbone, ...)
    preview_fn: PreviewFn | None = None  # (unwrapped model, batch) -> {tag: HxWx3 uint8}
    # further streams drawn once per batch of `dataset` (which alone defines the epochs);
    # the loss sees each as batch[name], e.g. {"unlabeled": SideData(...)}
    side: dict[str, SideData] = field(default_factory=dict)
    # writes the task's own files into the stage folder (main process, once the folder is
    # ready), e.g. which images were labelled
    write_files: Callable[[Path], None] | None = None


@dataclass
class TrainJob:
    """What a training step hands the engine before anything is built: its settings, its
    folder, how to build the task (after the Accelerator, which seeds every RNG, exists) and
    the step's own checks and records around the run. The engine knows no recipe section or
    task name beyond what is here."""

    section: str  # the recipe section of `settings`, for messages: "cam" -> cam.train.batch_size
    settings: TrainConfig
    folder: StageFolder
    build: Callable[[], Trainable]
    # every process, before anything is written, given the checkpoint a resume would continue
    # from (None: a fresh start): refuses (PsaError) when the run does not fit its folder
    check: Callable[[Path | None], None] | None = None
    on_start: Callable[[], None] | None = None  # main process, once the folder is ready
    # main process, next to the final weights, given the steps taken in all and the last loss
    on_finish: Callable[[int, float], None] | None = None


class StopRequested(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written."""


@dataclass
class TrainResult:
    stage_dir: Path
    weights: Path
    steps: int
    final_loss: float
    seconds: float
    world_size: int
    resumed_from: int
    losses: list[float] = field(default_factory=list)  # mean loss of each step this run took
    already_trained: bool = False  # it was finished before this run: nothing was trained


def train(recipe: Recipe, job: TrainJob, reporter: Reporter | None = None) -> TrainResult:
    """Run `job` under `recipe.run`'s settings (seed, workers, precision, memory layout)."""
    reporter = reporter or Reporter()
    stage_dir = job.folder.path
    ckpt_dir = job.folder.checkpoints
    train_cfg = job.settings
    key = f"{job.section}.train"
    accelerator = make_accelerator(recipe, grad_accum=train_cfg.grad_accum, project_dir=str(stage_dir))
    # batch_size is the global batch: the loader yields it whole and Accelerate hands each
    # process its slice, so steps, schedule and images per step do not depend on the world size
    per_process_batch = check_global_batch(train_cfg.batch_size, f"{key}.batch_size", accelerator.num_processes)
    task = job.build()  # first: bad data or weights fail before anything is written
    dataset = SeededAugmentation(task.dataset, recipe.run.seed)
    side_streams = [SideStream(name, side, recipe.run.seed, accelerator, recipe.run.num_workers)
                    for name, side in task.side.items()]
    loader = DataLoader(
        dataset, batch_size=train_cfg.batch_size, shuffle=True, drop_last=True,
        num_workers=recipe.run.num_workers, pin_memory=accelerator.device.type == "cuda",
        # not persistent: workers are re-forked each epoch and so see `dataset.epoch`
        persistent_workers=False,
        # its own generator: creating an iterator must not consume the global RNG (dropout's)
        generator=torch.Generator().manual_seed(recipe.run.seed),
    )
    if len(loader) == 0:
        raise PsaError(f"{task.name}: {len(task.dataset)} training images is fewer than "
                       f"{key}.batch_size={train_cfg.batch_size}")
    if accelerator.num_processes > 1 and accelerator.device.type == "cuda":
        # trainable BN over small per-GPU batches: statistics of the global batch (GPU only)
        task.model = nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
    if recipe.run.channels_last:
        # NHWC weights: cuDNN then picks its NHWC (tensor-core) kernels; measure it first with
        # bench/gpu_stages.py --channels-last
        task.model = task.model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(task.model, train_cfg.lr, train_cfg.momentum, train_cfg.weight_decay,
                                train_cfg.optimizer)
    model, optimizer, loader = accelerator.prepare(task.model, optimizer, loader)
    # the weight average is checkpointed with the model, so it must be registered before resume
    ema = WeightAverage(accelerator.unwrap_model(model), train_cfg.ema_decay) if train_cfg.ema_decay > 0 else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    steps_per_epoch = len(loader) // train_cfg.grad_accum
    if steps_per_epoch == 0:
        raise PsaError(f"{key}.grad_accum={train_cfg.grad_accum} exceeds the "
                       f"{len(loader)} batches of one epoch")
    max_step = steps_per_epoch * train_cfg.epochs
    stop_step = min(max_step, train_cfg.max_steps) if train_cfg.max_steps else max_step

    # weights or checkpoints of other inputs than the recipe asks for: refused, nothing written
    if job.check is not None:
        job.check(latest_checkpoint(ckpt_dir) if train_cfg.resume == "auto" else None)
    # a checkpoint that does not fit: nothing written
    step, resumed_loss = _resume(key, train_cfg, accelerator, ckpt_dir, reporter)
    resumed_from = step
    if accelerator.is_main_process:
        _prepare_run_dir(recipe, job.folder, accelerator.num_processes, {
            "global": train_cfg.batch_size, "per_process": per_process_batch,
            **{s.name: {"global": s.global_batch, "per_process": s.per_process} for s in side_streams},
        })
        remove_incomplete(ckpt_dir)
        if job.on_start is not None:
            job.on_start()
        if task.write_files is not None:
            task.write_files(stage_dir)
    accelerator.wait_for_everyone()
    writer = _tensorboard(job.folder) if accelerator.is_main_process else None
    stopper = _SignalFlag()
    reporter.start(f"train {task.name}", total=stop_step, completed=step)
    started, losses = time.perf_counter(), []
    window_start, window_images = time.perf_counter(), 0
    # side streams advance one batch per main batch: their position follows from the step
    first_batch = (step // steps_per_epoch) * len(loader) + (step % steps_per_epoch) * train_cfg.grad_accum
    side_iters = {s.name: s.batches(first_batch) for s in side_streams}
    try:
        while step < stop_step:
            epoch = step // steps_per_epoch
            loader.set_epoch(epoch)
            dataset.epoch = epoch
            skip = (step % steps_per_epoch) * train_cfg.grad_accum
            epoch_loader = accelerator.skip_first_batches(loader, skip) if skip else loader
            model.train()
            previewed = False
            for batch in epoch_loader:
                for name, side_iter in side_iters.items():
                    batch[name] = next(side_iter)
                batch["step"] = step  # optimizer steps so far: ramps that depend on it resume exactly
                if ema is not None:
                    batch["teacher"] = ema.model  # the weight average, for losses that take it as teacher
                with accelerator.accumulate(model):
                    set_poly_lr(optimizer, train_cfg.lr, step, max_step, train_cfg.poly_power)
                    loss, scalars = task.loss_fn(model, batch)
                    accelerator.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                window_images += _batch_size(batch) * accelerator.num_processes
                if not accelerator.sync_gradients:
                    continue
                step += 1
                if ema is not None:
                    ema.update(accelerator.unwrap_model(model))
                mean_loss = accelerator.reduce(loss.detach().float(), "mean").item()
                if not np.isfinite(mean_loss):
                    last = latest_checkpoint(ckpt_dir)
                    raise PsaError(f"{task.name}: loss is {mean_loss} at step {step}; stopped. "
                                   f"Last good checkpoint: {last or 'none'} (lower the LR?)")
                losses.append(mean_loss)
                if writer is not None and (step % train_cfg.log_every == 0 or step == stop_step):
                    now = time.perf_counter()
                    _log_scalars(writer, step, epoch, mean_loss, scalars, optimizer,
                                 window_images / max(now - window_start, 1e-9))
                    window_start, window_images = now, 0
                if writer is not None and not previewed and task.preview_fn is not None:
                    _log_previews(writer, task, accelerator.unwrap_model(model), batch, epoch, train_cfg)
                    model.train()
                    previewed = True
                reporter.update(step, loss=mean_loss, epoch=epoch + 1)
                stop_now = _any_rank(accelerator, stopper.raised)
                if step % train_cfg.checkpoint_every == 0 or step == stop_step or stop_now:
                    save_checkpoint(accelerator, ckpt_dir, step,
                                    {"epoch": epoch, "max_step": max_step, "loss": mean_loss},
                                    train_cfg.keep_checkpoints)
                if stop_now:
                    raise StopRequested(f"stopped by signal at step {step}; resume with {key}.resume=auto")
                if step >= stop_step:
                    break
    finally:
        stopper.restore()
        reporter.finish()
        if writer is not None:
            writer.close()

    weights = job.folder.weights
    # resumed from the last checkpoint with nothing left to do: its loss is the last one
    final_loss = losses[-1] if losses else (resumed_loss if resumed_loss is not None else float("nan"))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # with train.ema_decay the average is the model the later stages get (as the papers report it)
        save_weights(weights, ema.model if ema is not None else accelerator.unwrap_model(model),
                     {"task": task.name, "backbone": recipe.model.backbone, "steps": step,
                      "ema_decay": train_cfg.ema_decay, **task.meta})
        if job.on_finish is not None:
            job.on_finish(step, final_loss)
    accelerator.wait_for_everyone()
    return TrainResult(stage_dir, weights, step, final_loss, time.perf_counter() - started,
                       accelerator.num_processes, resumed_from, losses, already_trained=resumed_from >= stop_step)


# ----------------------------------------------------------------------------- helpers


def _prepare_run_dir(recipe: Recipe, folder: StageFolder, world_size: int, batch: dict) -> None:
    stage_dir = folder.path
    ensure_free_space(recipe.run.dir, recipe.run.min_free_mb)
    try:
        stage_dir.mkdir(parents=True, exist_ok=True)
        probe = stage_dir / ".write_test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PsaError(f"run directory {stage_dir} is not writable: {err.strerror} (recipe key run.dir)") from None
    for where in (stage_dir, stage_dir.parent):  # ".model.pt.*.tmp" etc. of a killed earlier run
        remove_stale_temp_files(where)
    atomic_write_json(folder.run_info, {
        "psa_version": __version__, "git_commit": _git_commit(), "world_size": world_size, "batch": batch,
        "command": sys.argv, "torch": torch.__version__, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    })


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _resume(key: str, train_cfg: TrainConfig, accelerator, ckpt_dir: Path,
            reporter: Reporter) -> tuple[int, float | None]:
    """(the step to continue from, the checkpoint's last loss if it recorded one)."""
    mode = train_cfg.resume
    if mode == "never":
        return 0, None
    checkpoint = latest_checkpoint(ckpt_dir) if mode == "auto" else Path(mode)
    if checkpoint is None:
        return 0, None
    if not checkpoint.is_dir():
        raise PsaError(f"recipe key '{key}.resume': checkpoint {checkpoint} not found")
    state = read_state(checkpoint)
    if not _rng_state_loads(checkpoint, accelerator.process_index):  # Accelerate would go on without a word
        reporter.log(f"checkpoint {checkpoint}: its random state (random_states_{accelerator.process_index}.pkl) "
                     "cannot be read; resuming without it, so the rest of this run is not bit-exact")
    try:
        accelerator.load_state(str(checkpoint))
    except pickle.UnpicklingError as err:  # a state file with more than tensors in it
        raise PsaError(f"checkpoint {checkpoint}: {unloadable(err)}; delete it, or start afresh with "
                       f"{key}.resume=never") from None
    except (KeyError, ValueError, RuntimeError) as err:  # another optimizer, model or group layout
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise PsaError(f"checkpoint {checkpoint} does not fit this run ({type(err).__name__}: {first}); "
                       f"was the recipe changed? Use a new run.dir or {key}.resume=never") from None
    return int(state["step"]), state.get("loss")


def _rng_state_loads(checkpoint: Path, process_index: int) -> bool:
    from accelerate.utils import load

    try:
        load(checkpoint / f"random_states_{process_index}.pkl")
    except Exception:  # noqa: BLE001 - missing, truncated, or not a state
        return False
    return True


def _batch_size(batch) -> int:
    first = batch["image"] if isinstance(batch, dict) else batch[0]
    return int(first.shape[0])


def _any_rank(accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(value, "sum").item() > 0)


class _SignalFlag:
    """Turn SIGINT/SIGTERM into a flag checked at step boundaries (then checkpoint + exit)."""

    def __init__(self):
        self.raised = False
        self._previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): keep defaults
                pass

    def _handle(self, signum, frame):
        self.raised = True

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _tensorboard(folder: StageFolder):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder.tensorboard))


def _log_scalars(writer, step, epoch, loss, scalars, optimizer, images_per_second) -> None:
    writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("train/epoch", epoch + 1, step)
    writer.add_scalar("train/images_per_s", images_per_second, step)
    for group in optimizer.param_groups:
        writer.add_scalar(f"lr/{group['name']}", group["lr"], step)
    for key, value in scalars.items():
        writer.add_scalar(f"train/{key}", float(value), step)


def _log_previews(writer, task: Trainable, model, batch, epoch, train_cfg) -> None:
    if train_cfg.images_per_epoch <= 0:
        return
    with torch.no_grad():
        model.eval()
        pictures = task.preview_fn(model, batch)
    for tag, picture in list(pictures.items())[: train_cfg.images_per_epoch]:
        writer.add_image(f"preview/{tag}", picture, epoch + 1, dataformats="HWC")
