"""Shared fixtures. Servers used by many test modules (the local S3 server) live here."""

import os

# Two cores are shared by pytest-xdist workers: keep each worker's math libraries single-threaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
