"""Finetuning recipes (SAM2 on the upstream trainer, TMO) with checkpoints and validation J&F in the store."""
