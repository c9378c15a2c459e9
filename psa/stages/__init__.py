"""Inference stages over image lists: CAM export, random walk, evaluation, prediction, and
the pipeline that runs every stage in order. Each shards its list across Accelerate
processes, writes every file atomically, and skips images whose outputs already exist."""
