"""The image buffer of Shrivastava et al. (2017) used by CycleGAN-style discriminators."""

from __future__ import annotations

import torch


class ImagePool:
    """Holds up to `size` generated images; each query returns, per image, either that image or (with
    probability 0.5 once full) a stored older one that it then replaces. Draws use torch's RNG, and the
    pool is part of the trainer state, so a resumed run continues exactly."""

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() > 0.5:
                index = int(torch.randint(0, self.size, ()))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state(self) -> torch.Tensor:
        return torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)

    def load_state(self, images: torch.Tensor, device: torch.device) -> None:
        self.images = [img[None].to(device) for img in images] if images.numel() else []


def pools_state(pools: dict[str, ImagePool]) -> dict[str, torch.Tensor]:
    """Trainer state of several named pools (for TranslationMethod.training_state)."""
    return {name: pool.state() for name, pool in pools.items()}


def load_pools(pools: dict[str, ImagePool], state: dict[str, torch.Tensor], device: torch.device) -> None:
    for name, pool in pools.items():
        if name in state:
            pool.load_state(state[name], device)
