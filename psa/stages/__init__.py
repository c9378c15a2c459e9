"""The stages: each method's steps (training, per-image inference, evaluation) registered in
pipeline order in the stage registry (psa/stages/registry.py) when this package is imported.
A per-image step shards its list across Accelerate processes, writes every file atomically,
and skips images whose outputs already exist and still match the recipe."""

# each module registers its steps; their order here is the pipeline's
from . import cam, affinity, irn, irn_instances, seg, cps  # noqa: F401,E402
