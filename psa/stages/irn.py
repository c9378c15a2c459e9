"""IRN's semantic pseudo masks, registered (Ahn, Cho & Kwak, CVPR 2019; reference/irn.md):
relation labels from the exported CAMs → IRNet's class boundaries → the CAMs walked over the
boundary's path-max affinities → pseudo masks and their evaluation, with and without CRF.

Not in the default pipeline: recipes name the steps in `pipeline.steps` (recipes/irn.yaml,
recipes/demo.yaml); `seg.walk: irn` trains the segmentation network on these masks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Recipe
from ..data.transforms import normalize
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import save_label_png, save_npz
from ..layout import RunLayout
from ..ops.boundary import boundary_walk
from ..ops.crf import dense_crf
from ..ops.relation_labels import relation_labels
from ..ops.walk_scores import to_probabilities, upsample_scores
from ..provenance import StageSpec
from ..tasks.irn import IRN_STRIDE, build_irn_model, build_irn_task
from .common import REFINING_CRF_READS, default_splits, items_for, load_trained, refining_crf_unused
from .evaluate import Predictions, evaluation_step
from .export_cams import load_cam_file
from .per_image import PerImageJob, run_per_image
from .registry import REGISTRY, Step, SummaryRow, register
from .training import training_spec, training_step

LABELS, WALK = "irn_labels", "irn_walk"


def _cams(recipe: Recipe, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    path = RunLayout.of(recipe).cams / f"{image_id}.npz"
    if not path.is_file():
        raise PsaError(f"CAM file missing: {path}; run tools/export_cams.py first")
    return load_cam_file(path)


# ----------------------------------------------------------------------------- relation labels

LABELS_SPEC = StageSpec(
    reads=("irn.fg_threshold", "irn.bg_threshold", "irn.crf", "data.train_split"),
    ignores=("run.seed", "run.mixed_precision"),  # no network: the label CRF only
    record=lambda r: RunLayout.of(r).stage("irn").record(LABELS),
    outputs=lambda r: [RunLayout.of(r).relation_labels, RunLayout.of(r).stage("irn").done(LABELS)],
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: ("export_cams",),
)


def make_relation_labels(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    folder = RunLayout.of(recipe).relation_labels
    cfg = recipe.irn

    def compute(model, item, paths, accelerator) -> None:
        cams, class_ids = _cams(recipe, item.image_id)
        label = relation_labels(item.load(), cams, class_ids, cfg.fg_threshold, cfg.bg_threshold, cfg.crf)
        save_label_png(paths["label"], label)

    job = PerImageJob(LABELS, "relation labels", LABELS_SPEC, items_for(recipe, [recipe.data.train_split]),
                      lambda item: {"label": folder / f"{item.image_id}.png"}, [folder],
                      load_model=lambda accelerator: None, compute=compute,
                      done_file=RunLayout.of(recipe).stage("irn").done(LABELS))
    return run_per_image(recipe, job, REGISTRY.provenance(recipe), reporter)


# ----------------------------------------------------------------------------- IRNet

TRAIN_SPEC = training_spec(
    "irn",
    reads=("model", "irn.train", "irn.init", "irn.output_stride", "irn.crop_size", "irn.resize_range",
           "irn.train_radius", "irn.pairs", "irn.displacement", "run.seed", "run.mixed_precision",
           "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: (LABELS, "train_cam") if r.irn.init == "cam" else (LABELS,),
)


def load_irn(recipe: Recipe, classes=None):
    """The trained IRNet, refused in one line when made for other classes or another stride."""
    return load_trained(recipe, "irn", lambda meta: build_irn_model(recipe, load_weights_=False), classes=classes,
                        fits={"irn.output_stride": ("output_stride", recipe.irn.output_stride)})


@torch.no_grad()
def boundary_and_displacement(model, image: np.ndarray, device) -> tuple[torch.Tensor, np.ndarray]:
    """IRN's `EdgeDisplacement.forward` at stride 4: the boundary probability (h, w) from the
    image and its mirror image, sigmoid(e0 / 2 + flip(e1) / 2), and the displacement (2, h, w)
    of the image alone."""
    x = normalize(image).to(device)
    logits, displacement = model(torch.stack([x, x.flip(-1)]))
    boundary = torch.sigmoid(logits[0, 0].float() / 2 + logits[1, 0].float().flip(-1) / 2)
    return boundary, displacement[0].float().cpu().numpy()


def strided_cams(cams: np.ndarray, size: tuple[int, int], device) -> torch.Tensor:
    """Full-resolution CAMs (K, H, W) at the boundary's stride-4 size, each divided by its max."""
    small = torch.from_numpy(cams).to(device)[None]
    small = F.interpolate(small, size=size, mode="bilinear", align_corners=False)[0] if len(cams) else \
        small.new_zeros((0, *size))
    peak = small.flatten(1).max(dim=1).values if len(cams) else small.new_zeros(0)
    return small / (peak[:, None, None] + 1e-5)


def walk_scores(cams: torch.Tensor, boundary: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """(K, h, w) stride-4 CAMs → (K+1, h, w) scores, channel 0 the background plane: IRN's
    walk, divided by the largest walked value (IRN takes it after the ×4 upsampling; bilinear
    upsampling keeps the maximum up to interpolation, so the two agree to rounding)."""
    cfg = recipe.irn
    walked = boundary_walk(cams, boundary, cfg.radius, cfg.beta, cfg.logt) if len(cams) else cams
    walked = walked / max(float(walked.max()) if walked.numel() else 0.0, 1e-5)
    plane = torch.full((1, *boundary.shape), cfg.sem_bg_threshold, dtype=walked.dtype, device=walked.device)
    return torch.cat([plane, walked])


def _walk_folders(recipe: Recipe, crf: bool) -> dict:
    layout = RunLayout.of(recipe)
    folders = {"pseudo": layout.pseudo_masks(walk="irn"), "scores": layout.irn_scores, "boundary": layout.boundaries}
    if crf:
        folders["pseudo_crf"] = layout.pseudo_masks(crf=True, walk="irn")
    return folders


WALK_SPEC = StageSpec(
    reads=("irn.radius", "irn.beta", "irn.logt", "irn.sem_bg_threshold", "irn.split", "irn.dense_crf",
           *REFINING_CRF_READS, "irn.output_stride", "irn.init", "model.backbone", "model.freeze_bn", "model.freeze_stem",
           "run.mixed_precision", "data.train_split", "data.eval_split"),
    ignores=("run.seed",),
    record=lambda r: RunLayout.of(r).stage("irn").record(WALK),
    outputs=lambda r: [*_walk_folders(r, crf=True).values(), RunLayout.of(r).stage("irn").done(WALK)],
    splits=lambda r: default_splits(r, r.irn.split),
    upstream=lambda r: ("train_irn", "export_cams"),
    unused=refining_crf_unused,
)


def run_boundary_walk(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    folders = _walk_folders(recipe, crf=recipe.irn.dense_crf)
    items = items_for(recipe, default_splits(recipe, recipe.irn.split))

    def outputs_of(item) -> dict:
        return {name: folder / f"{item.image_id}.{'npz' if name == 'scores' else 'png'}"
                for name, folder in folders.items()}

    def compute(model, item, paths, accelerator) -> None:
        cams, class_ids = _cams(recipe, item.image_id)
        image = item.load()
        with accelerator.autocast():
            boundary, _ = boundary_and_displacement(model, image, accelerator.device)
        scores = walk_scores(strided_cams(cams, tuple(boundary.shape), accelerator.device), boundary, recipe)
        full = upsample_scores(scores, *image.shape[:2], stride=IRN_STRIDE)
        lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
        save_npz(paths["scores"], scores=scores.cpu().numpy().astype(np.float16), classes=class_ids,
                 stride=np.int64(IRN_STRIDE))
        save_label_png(paths["boundary"], np.round(boundary.cpu().numpy() * 255).astype(np.uint8))
        if "pseudo_crf" in paths:
            refined = dense_crf(image, to_probabilities(full), recipe.refining_crf())
            save_label_png(paths["pseudo_crf"], lookup[refined.argmax(0)])
        save_label_png(paths["pseudo"], lookup[full.argmax(0)])

    job = PerImageJob(WALK, "IRN boundary walk", WALK_SPEC, items, outputs_of, list(folders.values()),
                      lambda accelerator: load_irn(recipe, items[0].source.classes).to(accelerator.device),
                      compute, done_file=RunLayout.of(recipe).stage("irn").done(WALK))
    return run_per_image(recipe, job, REGISTRY.provenance(recipe), reporter)


# ----------------------------------------------------------------------------- registration

PSEUDO_MASKS = Predictions("irn", stage="irn", step=WALK, labels=lambda r: RunLayout.of(r).pseudo_masks(walk="irn"),
                           scores=lambda r: RunLayout.of(r).irn_scores, scores_format="walk")

# after PSA's walk and its evaluation, so a pipeline with both walks runs them one after the other
register(Step(LABELS, LABELS_SPEC, make_relation_labels, task="irn", default=False), after="eval_rw_crf")
register(training_step("train_irn", "irn", build_irn_task, TRAIN_SPEC, default=False), after=LABELS)
register(Step(WALK, WALK_SPEC, run_boundary_walk, task="irn", default=False), after="train_irn")
register(evaluation_step("eval_irn", PSEUDO_MASKS, task="irn", default=False,
                         rows=(SummaryRow("CAM + IRN boundary walk", "IRN"),)), after=WALK)
register(evaluation_step("eval_irn_crf", PSEUDO_MASKS, task="irn", crf=True, default=False,
                         rows=(SummaryRow("CAM + IRN boundary walk + dCRF", "IRN+dCRF"),)), after="eval_irn")
