"""i2i: image-to-image translation from the command line."""

from __future__ import annotations

__version__ = "0.1.0"
