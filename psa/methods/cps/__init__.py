"""Cross Pseudo Supervision (Chen et al., CVPR 2021): semi-supervised segmentation by a pair
of networks, each learning from the labelled images and from the other's prediction on the
unlabelled ones (docs/results/cps.md). Not in the default pipeline: name its steps in
`pipeline.steps`, or train it with `tools/train.py` and `task: cps`."""

from .section import CpsConfig

ORDER = 50
SECTIONS = {"cps": CpsConfig}
