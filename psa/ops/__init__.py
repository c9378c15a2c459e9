"""Operators of the PSA method that other WSSS methods can reuse: pixel-pair neighbourhoods,
affinity labels, affinities and their loss, the random walk, and the dense CRF."""

from .affinity import affinity_loss, pair_affinity
from .affinity_labels import label_affinity, pair_labels
from .crf import dense_crf
from .neighbors import pair_offsets, shift_pairs
from .random_walk import random_walk, transition_matrix

__all__ = ["pair_offsets", "shift_pairs", "pair_labels", "label_affinity", "pair_affinity", "affinity_loss",
           "random_walk", "transition_matrix", "dense_crf"]
