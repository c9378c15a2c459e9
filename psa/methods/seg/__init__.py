"""The segmentation network (PSA's last stage): a DeepLab-style network trained on a
registered source's pseudo masks (`seg.masks`; or the ground truth, the upper bound), its
predictions on the held-out images, and their evaluation."""

from .section import SegConfig

ORDER = 40
SECTIONS = {"seg": SegConfig}
