"""One registry: method name -> method class (which names its typed config dataclass).

CLI choices, `i2i methods`, docs tables and the parametrised tests all come from here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # names only: listing methods must not import torch (typos are answered before it loads)
    from i2i_cli.models.base import TranslationMethod

# name -> "module:Class"; imported lazily so that listing methods is cheap.
_METHODS: dict[str, str] = {
    "pix2pix": "i2i_cli.models.methods.pix2pix:Pix2Pix",
    "cyclegan": "i2i_cli.models.methods.cyclegan:CycleGAN",
    "cut": "i2i_cli.models.methods.cut:CUT",
    "fastcut": "i2i_cli.models.methods.cut:FastCUT",
    "fsesim": "i2i_cli.models.methods.sesim:FSeSim",
    "lsesim": "i2i_cli.models.methods.sesim:LSeSim",
    "sincut": "i2i_cli.models.methods.single_image:SinCUT",
    "sinsesim": "i2i_cli.models.methods.single_image:SinSeSim",
    "agcyclegan": "i2i_cli.models.methods.agcyclegan:AGCycleGAN",
    "starganv2": "i2i_cli.models.methods.starganv2:StarGANv2",
    "segmenter": "i2i_cli.models.methods.segmenter:Segmenter",
    "pix2pix_turbo": "i2i_cli.models.methods.pix2pix_turbo:Pix2PixTurbo",
    "cyclegan_turbo": "i2i_cli.models.methods.cyclegan_turbo:CycleGANTurbo",
}


def list_methods() -> list[str]:
    return list(_METHODS)


def import_class(target: str) -> type:
    """The class a lazy registry entry "package.module:Class" names (imported now)."""
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def method_class(name: str) -> type[TranslationMethod]:
    if name not in _METHODS:
        raise KeyError(name)
    return import_class(_METHODS[name])

