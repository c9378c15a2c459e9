"""Score predictions against ground truth: mIoU, per-class IoU / precision / recall / F1.

examples:
  psa eval recipes/affinity.yaml --crf
  psa eval recipes/cam.yaml                      # CAMs, with a background-threshold sweep
  psa eval recipes/seg.yaml --pred my_masks/     # any folder of PNG label maps
  psa eval recipes/cam.yaml --source classifier  # per-class AP and mAP of the CAM classifier
"""

from __future__ import annotations

from .common import (
    RichReporter, add_recipe_arguments, ap_table, console, is_main_process, load_from_args, metrics_table, percent,
)

HELP = "score predictions (mIoU, per class; --crf; any folder of masks)"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--source", help="what to score: a registered evaluation source (cam, rw, irn, seg, cps, "
                                          "...) or classifier (per-class AP of the CAM classifier); default: the "
                                          "recipe's task's predictions")
    parser.add_argument("--crf", action="store_true", help="refine the scores with the dense CRF first")
    parser.add_argument("--pred", metavar="DIR", help="a folder of <id>.png label maps to score instead")
    parser.add_argument("--split", help="dataset split to score (default: data.eval_split, seg and cps: data.val_split)")


def run(args) -> int:
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    if args.source == "classifier":
        return _classifier(recipe, args)
    from ..framework.evaluation import evaluate

    metrics = evaluate(recipe, args.source, crf=args.crf, pred_dir=args.pred, split=args.split,
                       reporter=RichReporter())
    if is_main_process():
        console.print(metrics_table(metrics, f"{metrics['source']} on {metrics['split']} "
                                             f"({metrics['images']} images)"))
        if "bg_sweep" in metrics:
            sweep = "  ".join(f"{t}:{percent(v)}" for t, v in metrics["bg_sweep"].items())
            console.print(f"background threshold sweep (mIoU %): {sweep}")
            console.print(f"best threshold {metrics['best_bg_threshold']} → mIoU {percent(metrics['best_sweep_miou'])}")
    return 0


def _classifier(recipe, args) -> int:
    from ..errors import PsaError
    from ..framework.classify import evaluate_classifier

    if args.crf or args.pred:
        raise PsaError("--crf and --pred score masks; --source classifier scores image labels")
    metrics = evaluate_classifier(recipe, split=args.split, reporter=RichReporter())
    if is_main_process():
        console.print(ap_table(metrics, f"CAM classifier on {metrics['split']} ({metrics['images']} images)"))
    return 0
