"""IRN's training (`step/train_irn.py`): IRNet's boundary and displacement branches on a frozen
backbone, from the pair labels of the relation labels at stride 4."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ...config import Recipe
from ...data import build_source
from ...data import transforms as T
from ...data.base import check_files
from ...engine.checkpoints import load_weights
from ...engine.distributed import global_sum, world_size
from ...engine.trainer import Trainable
from ...errors import PsaError
from ...framework.cams import classifier
from ...io import read_label_png, require_files
from ...models.backbone import build_backbone
from ...ops.affinity_labels import pair_labels
from ...viz import colorize_label, jet, side_by_side
from .boundary import irn_loss
from .layout import relation_labels_folder
from .model import IRNet

IRN_STAGES = (0, 1, 2, 3, 4)  # IRNet reads every stage of the backbone
IRN_STRIDE = 4  # both branches work at stride 4


class IrnTrainDataset(Dataset):
    """IRN's augmentation: random rescale, flip, crop (image 0, labels 255); the relation labels
    are then taken at stride 4 (nearest), as IRN's `pil_rescale(label, 0.25, 0)`."""

    def __init__(self, source, recipe: Recipe):
        self.source = source
        self.cfg = recipe.irn
        self.folder = relation_labels_folder(recipe)
        require_files(self.folder, [f"{i}.png" for i in source.ids], "relation labels",
                      "run the irn_labels step first")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        label = read_label_png(self.folder / f"{self.source.ids[index]}.png", "relation label", image.shape[:2])
        image, label = T.random_scale(image, label, *self.cfg.resize_range)
        image, label = T.random_hflip(image, label)
        tensor, label = T.random_crop(T.normalize(image), torch.from_numpy(np.ascontiguousarray(label)),
                                      self.cfg.crop_size, fill=0.0)
        size = self.cfg.crop_size // IRN_STRIDE
        small = Image.fromarray(label.numpy().astype(np.uint8)).resize((size, size), Image.NEAREST)
        return {"image": tensor, "label": torch.from_numpy(np.asarray(small).astype(np.int64))}


def irn_loss_fn(radius: int, pairs: str, displacement: bool):
    def loss_fn(model, batch: dict) -> tuple[torch.Tensor, dict]:
        boundary, field = model(batch["image"])
        labels = pair_labels(batch["label"], radius, pairs=pairs)
        loss, parts = irn_loss(boundary, field if displacement else None, labels, radius, reduce_count=global_sum)
        # ×N against DDP's gradient mean (psa/engine/distributed.py): the counts are the global batch's
        return loss * world_size(), parts
    return loss_fn


def irn_preview(model: IRNet, batch: dict) -> dict:
    """Image | relation labels | boundary probability, for the first images of the batch."""
    images = batch["image"][:4]
    boundary = torch.sigmoid(model(images)[0][:, 0]).float().cpu().numpy()
    pictures = {}
    for i in range(images.shape[0]):
        rgb = T.denormalize(images[i])
        small = [np.asarray(Image.fromarray(p).resize(rgb.shape[1::-1], Image.NEAREST))
                 for p in (colorize_label(batch["label"][i].cpu().numpy().astype(np.uint8)),
                           jet(boundary[i]))]
        pictures[f"boundary_{i}"] = side_by_side([rgb, *small])
    return pictures


def build_irn_model(recipe: Recipe, load_weights_: bool = True) -> IRNet:
    """IRNet on the ImageNet backbone (IRN), or with `irn.init: cam` on the CAM classifier's."""
    from_cam = recipe.irn.init == "cam"
    backbone = build_backbone(recipe.model, load_weights=load_weights_ and not from_cam,
                              output_stride=recipe.irn.output_stride, out_indices=IRN_STAGES)
    if load_weights_ and from_cam:
        cam = classifier()
        state, _ = load_weights(cam.weights(recipe), cam.step.training.section, recipe.model.backbone)
        body = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        missing, _ = backbone.load_state_dict(body, strict=False)
        if [k for k in missing if not k.startswith(("input_scale", "input_shift"))]:
            raise PsaError(f"irn.init=cam: the CAM classifier's backbone lacks {missing[0]} (another model.backbone?)")
    return IRNet(backbone)


def build_irn_task(recipe: Recipe) -> Trainable:
    cfg = recipe.irn
    source = build_source(recipe.data, recipe.data.train_split)
    check_files(source)
    if cfg.crop_size % IRN_STRIDE:
        raise PsaError(f"recipe key 'irn.crop_size' must be a multiple of {IRN_STRIDE}, got {cfg.crop_size}")
    model = build_irn_model(recipe)
    if not cfg.displacement:  # an unused branch would stall DDP's gradient reduction: frozen instead
        for module in model.lr_groups()[1][1]:
            module.requires_grad_(False)
    return Trainable(
        name="irn", model=model, dataset=IrnTrainDataset(source, recipe),
        loss_fn=irn_loss_fn(cfg.train_radius, cfg.pairs, cfg.displacement), preview_fn=irn_preview,
        meta={"classes": list(source.classes), "radius": cfg.train_radius, "output_stride": cfg.output_stride},
    )


