"""MOSE/DAVIS data layout: reading, writing and validating splits, and the synthetic MOSE-like generator."""
