"""Networks: one timm backbone at output stride 8, three heads (CAM, affinity, segmentation),
and the pair of segmentation networks CPS trains."""

from .backbone import Backbone, build_backbone
from .cam import CamNet
from .affinity import AffinityNet
from .seg import SegNet
from .cps import CpsPair, CpsPredictor

__all__ = ["Backbone", "build_backbone", "CamNet", "AffinityNet", "SegNet", "CpsPair", "CpsPredictor"]
