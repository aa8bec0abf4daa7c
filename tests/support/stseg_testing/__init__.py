"""Code the tests import: seeded synthetic predictors, the synthetic fusion benchmark, the S3 fault proxy.

`tests/support` is on pytest's `pythonpath` (pyproject.toml), so tests write `from stseg_testing.… import …`;
fixtures built on these live in the `conftest.py` files. Bench scripts load them by path.
"""
