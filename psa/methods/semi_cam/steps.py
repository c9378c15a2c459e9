"""FixMatch and MixMatch, registered as ways to train the CAM classifier."""

from __future__ import annotations

from ...framework.classifier import CamVariant
from ...framework.registry import REGISTRY
from .variants import FixMatchUnlabeled, MixMatchUnlabeled, fixmatch_loss, mixmatch_loss, unlabeled_stream

REGISTRY.add(CamVariant("fixmatch", "cam.fixmatch", unlabeled_stream("fixmatch", FixMatchUnlabeled, fixmatch_loss)))
REGISTRY.add(CamVariant("mixmatch", "cam.mixmatch", unlabeled_stream("mixmatch", MixMatchUnlabeled, mixmatch_loss)))
