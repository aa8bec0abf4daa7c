"""PGMR: pseudo-label fusion of several models' masks and per-video model recommendation."""
