"""Datasets, layouts and image I/O."""
