"""i2i: image-to-image translation from the command line and from Python.

    import i2i_cli
    t = i2i_cli.load("runs/facades", device="auto")   # a run, .onnx file, Hub-layout folder or hf://owner/name
    out = t(Image.open("in.png"))                     # PIL in, PIL out; also uint8 arrays and float tensors

`import i2i_cli` imports no torch: the library loads on the first `load` (or use of a name from i2i_cli.api).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from i2i_cli.api import Translator
    from i2i_cli.inference import TranslateOptions, TranslateResult

__all__ = ["Translator", "TranslateOptions", "TranslateResult", "__version__", "load"]

_LAZY = {"Translator": "i2i_cli.api", "TranslateOptions": "i2i_cli.inference", "TranslateResult": "i2i_cli.inference"}


def load(checkpoint: str | os.PathLike[str] | None, device: str = "auto", *, direction: str = "AtoB",
         precision: str = "auto") -> Translator:
    """A Translator for a run folder, a checkpoint, an .onnx file, a Hub-layout folder or hf://owner/name[@rev].

    `device`: auto (CUDA when present), cpu, cuda or cuda:N; `direction`: AtoB or BtoA (two-sided methods);
    `precision`: auto (bf16 on a CPU with native bf16, else fp32), fp32, bf16 or fp16 (PyTorch runs). Errors are i2i_cli.errors.I2IError with a one-line message."""
    from i2i_cli.api import load as load_translator

    return load_translator(checkpoint, device, direction=direction, precision=precision)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'i2i_cli' has no attribute {name!r}")
