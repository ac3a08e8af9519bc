"""Losses: each a function plus a small nn.Module, shapes in the docstring."""
