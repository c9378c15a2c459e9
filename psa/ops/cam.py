"""CAM inference (multi-scale + flip, as the reference) and what is derived from CAMs:
background scores, CAM predictions, and the confident labels AffinityNet learns from."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import CrfConfig
from ..constants import IGNORE_INDEX
from ..data.transforms import normalize
from .crf import dense_crfs


@torch.no_grad()
def multiscale_cam(model, image: np.ndarray, class_idx: Sequence[int], scales: Sequence[float],
                   flip: bool = True, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sum of CAMs over scales (and their flips) at the image's resolution, divided by each
    class's maximum (+1e-5). `class_idx` are 0-based foreground channels (the image's
    labels); returns (len(class_idx), H, W) float32 on `device`.

    The flipped copy rides in the same batch as the original, so each scale is one forward.
    """
    height, width = image.shape[:2]
    pil = Image.fromarray(image)
    idx = torch.as_tensor(list(class_idx), dtype=torch.long, device=device)
    total = torch.zeros((len(idx), height, width), device=device)
    for scale in scales:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        scaled = normalize(np.asarray(pil.resize(size, Image.BICUBIC))).to(device)
        batch = torch.stack([scaled, scaled.flip(-1)]) if flip else scaled[None]
        cams = model.forward_cam(batch)[:, idx].float()
        cams = F.interpolate(cams, size=(height, width), mode="bilinear", align_corners=False)
        total += cams[0]
        if flip:
            total += cams[1].flip(-1)
    peak = total.flatten(1).max(dim=1).values if len(idx) else total.new_zeros(0)
    return total / (peak[:, None, None] + 1e-5)


def background_score(cams: np.ndarray, alpha: float) -> np.ndarray:
    """(1 − max_c CAM_c)^alpha: a low alpha inflates the background, a high one shrinks it."""
    if cams.shape[0] == 0:
        return np.ones(cams.shape[1:], dtype=np.float32)
    return np.power(1.0 - cams.max(axis=0), alpha).astype(np.float32)


def class_lookup(class_ids: np.ndarray) -> np.ndarray:
    """Channel → class id of a score stack whose channel 0 is the background and channel k
    the class `class_ids[k - 1]`."""
    return np.concatenate([[0], class_ids]).astype(np.uint8)


def cam_prediction(cams: np.ndarray, class_ids: np.ndarray, bg_threshold: float) -> np.ndarray:
    """argmax over [constant background, CAMs] → uint8 class ids."""
    scores = np.concatenate([np.full((1, *cams.shape[1:]), bg_threshold, dtype=np.float32), cams])
    return class_lookup(class_ids)[scores.argmax(axis=0)]


def confident_labels(image: np.ndarray, cams: np.ndarray, class_ids: np.ndarray, low_alpha: float,
                     high_alpha: float, crf: CrfConfig | None = None) -> np.ndarray:
    """The reference's la/ha rule on CRF-refined scores, as one uint8 map:
    class id where the low-alpha CRF says foreground (confident fg), 0 where the high-alpha
    CRF says background (confident bg, wins), 255 elsewhere.

    Unlike the reference, the argmax is taken at full resolution and the result stored as a
    PNG; the reference stored float marginals (MBs per image) and pooled them before the
    argmax. `transforms.downsample_label` reduces this map to stride 8 by block vote.
    """
    lookup = class_lookup(class_ids)
    scores = [np.concatenate([background_score(cams, alpha)[None], cams.astype(np.float32)])
              for alpha in (low_alpha, high_alpha)]
    low, high = (marginals.argmax(axis=0) for marginals in dense_crfs(image, scores, crf))
    label = lookup[low]
    label[low == 0] = IGNORE_INDEX
    label[high == 0] = 0
    return label
