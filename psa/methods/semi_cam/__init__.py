"""FixMatch and MixMatch for the CAM classifier when only some images carry labels: variants
of its training (`cam.method: fixmatch | mixmatch`, settings in `cam.fixmatch`,
`cam.mixmatch`), the unlabelled images learned from through pseudo-labels of their weak
views (docs/results/semi-supervised-cam.md)."""

from .section import FixMatchConfig, MixMatchConfig, check_teacher

ORDER = 15
SECTIONS = {"cam.fixmatch": FixMatchConfig, "cam.mixmatch": MixMatchConfig}
CHECKS = (check_teacher,)
