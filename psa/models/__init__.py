"""Networks more than one method builds on: one timm backbone at output stride 8, the CAM
classifier and the segmentation network. A method's own network lives in its folder."""

from .backbone import Backbone, build_backbone, freeze_backbone
from .cam import CamNet
from .seg import SegNet

__all__ = ["Backbone", "build_backbone", "freeze_backbone", "CamNet", "SegNet"]
