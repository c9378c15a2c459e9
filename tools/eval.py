"""Score predictions against ground truth: mIoU, per-class IoU/precision/recall/F1.

    python tools/eval.py recipes/affinity.yaml --crf
    python tools/eval.py recipes/cam.yaml                 # CAMs, with a background-threshold sweep
    python tools/eval.py recipes/seg.yaml --pred my_masks/ # any folder of PNG label maps
    python tools/eval.py recipes/cam.yaml --source classifier  # per-class AP and mAP of the CAM classifier
"""

import _path  # noqa: F401

from psa.cli.common import (
    RichReporter, ap_table, console, is_main_process, metrics_table, percent, recipe_parser, load_from_args,
    run_tool,
)


def main() -> int:
    parser = recipe_parser(__doc__)
    parser.add_argument("--source", help="what to score: a registered step's predictions (cam, rw, seg, cps, ...) or "
                                          "classifier (per-class AP of the CAM network); default: the recipe's "
                                          "task's predictions (cam→cam, affinity→rw, seg→seg, cps→cps)")
    parser.add_argument("--crf", action="store_true", help="refine the scores with the dense CRF first")
    parser.add_argument("--pred", metavar="DIR", help="a folder of <id>.png label maps to score instead")
    parser.add_argument("--split", help="dataset split to score (default: data.eval_split, seg and cps: data.val_split)")
    args = parser.parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    if args.source == "classifier":
        return _classifier(recipe, args)
    from psa.stages.evaluate import evaluate

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
    from psa.errors import PsaError
    from psa.stages.classify import evaluate_classifier

    if args.crf or args.pred:
        raise PsaError("--crf and --pred score masks; --source classifier scores image labels")
    metrics = evaluate_classifier(recipe, split=args.split, reporter=RichReporter())
    if is_main_process():
        console.print(ap_table(metrics, f"CAM classifier on {metrics['split']} ({metrics['images']} images)"))
    return 0


if __name__ == "__main__":
    run_tool(main)
