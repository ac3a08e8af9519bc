"""Diffusion base models (img2img-turbo's stabilityai/sd-turbo): found locally or through the Hub, loaded with
diffusers / transformers (the [diffusion] extra)."""
