"""IRN (Ahn, Cho & Kwak, CVPR 2019; shared/reference/irn.md): relation labels from the
exported CAMs, IRNet's class boundaries and displacement field learned from them on a frozen
backbone, the CAMs walked over the boundary's path-max affinities → pseudo masks (source
`irn`), and instance masks from the displacement field's centroids."""

from .section import IrnConfig

ORDER = 30
SECTIONS = {"irn": IrnConfig}
