"""Execution backends (`local`, `kubernetes`) behind one base class."""
