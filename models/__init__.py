"""The i2i PyTorch stack: networks, losses and translation methods (no files, no printing, no CLI)."""

