"""Networks: one timm backbone at output stride 8, three heads (CAM, affinity, segmentation)."""

from .backbone import Backbone, build_backbone
from .cam import CamNet
from .affinity import AffinityNet
from .seg import SegNet

__all__ = ["Backbone", "build_backbone", "CamNet", "AffinityNet", "SegNet"]
