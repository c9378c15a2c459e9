"""ReCAM's re-activation loss on a trained CAM classifier's frozen features: does it help these CAMs?

    python bench/recam_frozen.py recipes/msrc.yaml run.dir=runs/msrc_s0 --every 3 \
        [--epochs 4] [--loss-weight 1] [--lr 0.1] [--classes face body] [key=value ...]

ReCAM (Chen et al., CVPR 2022; zhaozhengChen/ReCAM, step/train_recam.py) fine-tunes the CAM
classifier with a second loss: each present class k's CAM (ReLU, divided by its maximum) weights
the feature map, the weighted average feature goes through a new 1×1 classifier W', and a
softmax cross-entropy asks it for k. The CAMs are then made with W ⊙ W' (make_recam.py,
`forward2`). With the backbone frozen, as in recipes/msrc.yaml, only the classifiers learn, so
the features are computed once: each train image of the export split at scale 1 and its flip.
W starts from the run's classifier (`<run.dir>/cam/model.pt`) at 0.1 × `--lr`, W' from scratch
at `--lr` (SGD, momentum 0.9, weight decay 1e-4, poly decay, batches of 8, as ReCAM).

Prints the training losses per epoch, then the CAM mIoU of every `--every`-th image for the
classifier before (W0) and after (W), for W' and for W ⊙ W', each as the export computes CAMs
(the recipe's `cam.scales` and `cam.flip`), at `cam.bg_threshold` and at the best threshold of
`eval.bg_sweep`, with the IoU of `--classes`. Nothing in the run is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from psa.config import load_recipe  # noqa: E402
from psa.data.transforms import normalize  # noqa: E402
from psa.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from psa.ops.cam import cam_prediction, multiscale_cam  # noqa: E402
from psa.stages.common import default_splits, items_for  # noqa: E402
from psa.stages.evaluate import sweep_thresholds  # noqa: E402
from psa.stages.export_cams import load_cam_net  # noqa: E402

BATCH = 8


class FixedClassifierCam(torch.nn.Module):
    """forward_cam of the trained backbone with another 1×1 classifier weight."""

    def __init__(self, backbone, weight: torch.Tensor):
        super().__init__()
        self.backbone, self.weight = backbone, weight

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.conv2d(self.backbone(x)[-1], self.weight))


def recam_loss(features: torch.Tensor, positives: torch.Tensor, weight: torch.Tensor,
               predictor: torch.Tensor) -> tuple[torch.Tensor, float]:
    """ReCAM's cross-entropy for one image: features (C, h, w), positives (n,) 0-based."""
    cams = F.relu(F.conv2d(features[None], weight))[0, positives]
    cams = cams / (cams.flatten(1).max(1).values[:, None, None] + 1e-5)
    pooled = (cams[:, None] * features[None]).flatten(2).mean(-1)  # (n, C)
    logits = pooled @ predictor.flatten(1).t()
    return F.cross_entropy(logits, positives), (logits.argmax(1) == positives).float().mean().item()


def train(features, targets, w0, epochs: int, loss_weight: float, lr: float, log) -> tuple[torch.Tensor, torch.Tensor]:
    weight = w0.clone().requires_grad_(True)
    predictor = torch.nn.Conv2d(w0.shape[1], w0.shape[0], 1, bias=False).weight.detach().clone().requires_grad_(True)
    optimizer = torch.optim.SGD([{"params": [weight], "lr": 0.1 * lr}, {"params": [predictor], "lr": lr}],
                                momentum=0.9, weight_decay=1e-4)
    base = [group["lr"] for group in optimizer.param_groups]
    steps, step = epochs * (len(features) // BATCH), 0
    for epoch in range(epochs):
        order = torch.randperm(len(features)).tolist()
        sums = np.zeros(3)
        for start in range(0, len(order) - BATCH + 1, BATCH):
            for group, lr0 in zip(optimizer.param_groups, base):
                group["lr"] = lr0 * (1 - step / steps) ** 0.9
            bce = ce = 0.0
            for i in order[start:start + BATCH]:
                view = features[i][torch.randint(2, ()).item()].float()
                logits = F.conv2d(view.mean((1, 2), keepdim=True)[None], weight).flatten(1)
                bce = bce + F.multilabel_soft_margin_loss(logits, targets[i][None])
                loss, accuracy = recam_loss(view, targets[i].nonzero()[:, 0], weight, predictor)
                ce = ce + loss
                sums[2] += accuracy / BATCH
            optimizer.zero_grad()
            ((bce + loss_weight * ce) / BATCH).backward()
            optimizer.step()
            step += 1
            sums[:2] += (bce.item() / BATCH, ce.item() / BATCH)
        batches = len(order) // BATCH
        log(f"epoch {epoch + 1}: classification loss {sums[0] / batches:.4f}, ReCAM loss {sums[1] / batches:.4f}, "
            f"ReCAM accuracy {100 * sums[2] / batches:.1f} %")
    return weight.detach(), predictor.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--loss-weight", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--every", type=int, default=3, help="score every N-th image")
    parser.add_argument("--classes", nargs="*", default=[], help="class names whose IoU to print")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    recipe = load_recipe(args.recipe, args.overrides)
    torch.manual_seed(recipe.run.seed)
    console = Console(width=140)
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))
    classes = items[0].source.classes
    unknown = [name for name in args.classes if name not in classes]
    if unknown:
        sys.exit(f"bench/recam_frozen.py: --classes {unknown[0]!r} is not a class of {recipe.data.root}")
    model = load_cam_net(recipe, classes).eval()
    w0 = model.classifier.weight.detach().clone()

    features, targets = [], []
    with torch.no_grad():  # not inference_mode: the training below takes gradients through them
        for item in items:
            image = normalize(item.source.load_image(item.index))
            features.append(model.backbone(torch.stack([image, image.flip(-1)]))[-1].half())
            target = torch.zeros(len(classes) - 1)
            target[torch.as_tensor(item.source.image_labels(item.index)) - 1] = 1.0
            targets.append(target)
    weight, predictor = train(features, targets, w0, args.epochs, args.loss_weight, args.lr, console.print)
    del features

    variants = {"W0 (the run's classifier)": w0, "W (fine-tuned with ReCAM's loss)": weight,
                "W' (ReCAM's classifier)": predictor, "W ⊙ W' (ReCAM's CAMs)": weight * predictor}
    grid = sorted({*sweep_thresholds(recipe), recipe.cam.bg_threshold})
    size = len(classes)
    tallies = {name: {t: np.zeros((size, size + 1), np.int64) for t in grid} for name in variants}
    scored = items[:: args.every]
    with torch.inference_mode():
        for item in scored:
            image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
            class_ids = item.source.image_labels(item.index)
            for name, w in variants.items():
                cams = multiscale_cam(FixedClassifierCam(model.backbone, w), image, class_ids - 1,
                                      recipe.cam.scales, recipe.cam.flip).numpy()
                for t in grid:
                    tallies[name][t] += confusion_matrix(cam_prediction(cams, class_ids, t), gt, size)

    table = Table(title=f"CAM mIoU % over {len(scored)} images of {recipe.run.dir}, ReCAM's loss on frozen features")
    for column in ("classifier", f"at {recipe.cam.bg_threshold:g}", "best", "best threshold",
                   *(f"{name} IoU (best)" for name in args.classes)):
        table.add_column(column, justify="right")
    for name in variants:
        scores = {t: segmentation_scores(conf, classes) for t, conf in tallies[name].items()}
        best = max(scores, key=lambda t: scores[t]["miou"])
        ious = [scores[best]["iou"][c] for c in args.classes]
        table.add_row(name, f"{100 * scores[recipe.cam.bg_threshold]['miou']:.1f}", f"{100 * scores[best]['miou']:.1f}",
                      f"{best:g}", *("—" if v is None else f"{100 * v:.1f}" for v in ious))
    console.print(table)


if __name__ == "__main__":
    main()
