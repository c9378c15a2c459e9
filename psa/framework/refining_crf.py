"""The dense CRF that refines masks (a walk's pseudo_crf, --crf evaluations and predictions):
`mask_crf` when the recipe sets it, else `crf` (`Recipe.refining_crf`)."""

from __future__ import annotations

from ..config import Recipe

# the keys a mask-refining step reads: both sections, one of them unused
REFINING_CRF_READS = ("crf", "mask_crf")


def refining_crf_unused(recipe: Recipe) -> tuple[str, ...]:
    """The CRF section a mask-refining step leaves unread: with `mask_crf` unset, its records
    hold `crf` (and stay those they were before the key existed)."""
    return ("crf",) if recipe.mask_crf is not None else ("mask_crf",)
