"""The i2i PyTorch stack: networks, losses and translation methods (no files, no printing, no CLI)."""

I2I_MODELS_MARKER = "i2i.models"
