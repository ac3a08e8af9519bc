"""Training engine: trainer, checkpoints, device and precision."""
