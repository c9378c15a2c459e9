"""What every method builds on and nothing method-specific: the registry (steps, pseudo-mask
sources, what the methods provide each other), the kinds of steps (training, per-image,
evaluation, prediction), the CAM contract, the segmentation-network kit, the diagnosis,
post-hoc tuning, and recipe loading with method discovery. It imports no method."""
