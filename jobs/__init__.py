"""Thin container entrypoints, one per stage: `python -m stseg_jobs.<stage>`."""
