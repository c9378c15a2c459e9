"""PSA's refinement (Ahn & Kwak, CVPR 2018): AffinityNet learns from the CAM export's
confident labels which neighbouring pixels belong together, and a random walk over its
affinities spreads the CAMs into pseudo masks (source `rw`), scored with and without the
dense CRF."""

from .section import AffinityConfig, RandomWalkConfig

ORDER = 20
SECTIONS = {"affinity": AffinityConfig, "random_walk": RandomWalkConfig}
