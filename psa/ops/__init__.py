"""Tensor operators more than one method uses: pixel-pair neighbourhoods and their labels,
the sparse random walk, CAM math, the dense CRF, score files and shared losses. A method's
own operators live in its folder."""

from .affinity_labels import label_affinity, pair_labels
from .crf import dense_crf
from .neighbors import pair_offsets, shift_pairs
from .random_walk import random_walk, transition_matrix

__all__ = ["pair_offsets", "shift_pairs", "pair_labels", "label_affinity", "random_walk", "transition_matrix",
           "dense_crf"]
