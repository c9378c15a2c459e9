"""Reading what an evaluation scores, image by image: label maps, CAM files (their argmax at
the background threshold), or class scores refined by the dense CRF in a process pool."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import Recipe
from ..engine.cpu_workers import available_cores
from ..errors import PsaError
from ..io import read_label_png
from ..ops.cam import cam_prediction
from ..ops.crf import dense_crf
from ..ops.scores import ScoreFile, to_probabilities
from .cams import CamFile
from .step import Predictions


class PredictionReader:
    """Yields (item, ground truth, prediction, CAM file or None) per image; CRF work goes to a
    process pool. `source` None: a folder of label maps (`pred_dir`)."""

    def __init__(self, recipe: Recipe, source: Optional[Predictions], pred_dir: str | None, crf: bool):
        self.recipe, self.crf = recipe, crf
        if pred_dir is not None:
            self.folder = Path(pred_dir)
            if not self.folder.is_dir():
                raise PsaError(f"prediction folder not found: {pred_dir}")
            self.kind = "png"
        elif crf:  # only the source's own keys are read (provenance)
            self.folder, self.kind = source.scores(recipe), source.scores_format
        else:
            self.folder, self.kind = source.labels(recipe), source.kind

    def _path(self, image_id: str) -> Path:
        path = self.folder / f"{image_id}.{'png' if self.kind == 'png' else 'npz'}"
        if not path.is_file():
            raise PsaError(f"prediction missing: {path} (run the step that writes it first)")
        return path

    def _scores(self, item, image_shape) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (K+1, H, W), lookup channel → class id)."""
        path = self._path(item.image_id)
        if self.kind == "cam":
            cam = CamFile.read(path)
            bg = np.full((1, *cam.cams.shape[1:]), self.recipe.cam.bg_threshold, dtype=np.float32)
            scores, lookup = np.concatenate([bg, cam.cams]), cam.lookup
        else:
            found = ScoreFile.read(path)
            scores, lookup = found.at_size(*image_shape), found.lookup
        if scores.shape[1:] != image_shape:
            raise PsaError(f"scores in {path} are {scores.shape[1:]}, the image is {image_shape}")
        return to_probabilities(scores), lookup

    def run(self, items):
        if self.crf:
            yield from self._run_crf(items)
            return
        for item in items:
            gt = item.source.load_mask(item.index)
            if self.kind == "png":
                yield item, gt, read_label_png(self._path(item.image_id), "prediction"), None
            else:  # cam
                cam = CamFile.read(self._path(item.image_id))
                yield item, gt, cam_prediction(cam.cams, cam.class_ids, self.recipe.cam.bg_threshold), cam

    def _run_crf(self, items):
        workers = self.recipe.eval.crf_workers or available_cores()
        if workers == 1:
            for item in items:
                image = item.source.load_image(item.index)
                probs, lookup = self._scores(item, image.shape[:2])
                label = crf_label(image, probs, lookup, self.recipe.refining_crf())
                yield item, item.source.load_mask(item.index), label, None
            return
        # fork: the children only run numpy + pydensecrf, never torch
        context = multiprocessing.get_context("fork")
        window = 2 * workers
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            pending = []
            for item in items:
                image = item.source.load_image(item.index)
                probs, lookup = self._scores(item, image.shape[:2])
                pending.append((item, pool.submit(crf_label, image, probs, lookup, self.recipe.refining_crf())))
                if len(pending) >= window:
                    done_item, future = pending.pop(0)
                    yield done_item, done_item.source.load_mask(done_item.index), future.result(), None
            for done_item, future in pending:
                yield done_item, done_item.source.load_mask(done_item.index), future.result(), None


def crf_label(image: np.ndarray, probs: np.ndarray, lookup: np.ndarray, crf_cfg) -> np.ndarray:
    """The class id of each pixel after the dense CRF over `probs` (channel → id by `lookup`)."""
    return lookup[dense_crf(image, probs, crf_cfg).argmax(axis=0)]
