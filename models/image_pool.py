"""The image buffer of Shrivastava et al. (2017) used by CycleGAN-style discriminators."""

from __future__ import annotations

import torch


class ImagePool:
    """Holds up to `size` generated images; each query returns, per image, either that image or (with
    probability 0.5 once full) a stored older one that it then replaces. Draws use torch's RNG (or given
    picks, see query_with_picks), and the pool is part of the trainer state, so a resumed run continues
    exactly."""

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        return self.query_with_picks(images)[0]

    def query_with_picks(self, images: torch.Tensor,
                         picks: list[int] | None = None) -> tuple[torch.Tensor, list[int]]:
        """The images to show the discriminator, and the pick made for each input image: -1 = the image itself
        (always while the pool fills), k = the stored image k, which the input then replaces. Given `picks`
        (one per image) are used instead of random draws, e.g. to replay another run's choices."""
        if picks is not None and len(picks) != images.shape[0]:
            raise ValueError(f"{len(picks)} pool picks for {images.shape[0]} images")
        if self.size <= 0:
            return images, [-1] * images.shape[0]
        out, made = [], []
        for i, image in enumerate(images.detach()):
            image = image[None]
            if len(self.images) < self.size:
                if picks is not None and picks[i] != -1:
                    raise ValueError(f"pool pick {picks[i]} for image {i}, but the pool is still filling")
                self.images.append(image.clone())
                out.append(image)
                made.append(-1)
                continue
            index = self._draw_pick() if picks is None else picks[i]
            if not -1 <= index < self.size:
                raise ValueError(f"pool pick {index} outside -1..{self.size - 1}")
            if index >= 0:
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
            made.append(index)
        return torch.cat(out, 0), made

    def _draw_pick(self) -> int:
        """With probability 0.5 a uniformly chosen stored image, else -1."""
        if torch.rand(()).item() > 0.5:
            return int(torch.randint(0, self.size, ()))
        return -1

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
