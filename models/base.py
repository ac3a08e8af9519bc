"""The method contract: what every translation method (pix2pix, CycleGAN, ...) gives the trainer.

A method is an nn.Module that owns its networks (as attributes) and knows its losses. It never touches
optimizers, precision, EMA, distribution, files or devices: the trainer does, from what the method declares:

- `optimizers()`  which parameters each named optimizer trains, with its lr/betas/weight decay;
- `phases(progress)`  the ordered steps of one training iteration; each phase computes a dict of weighted
  loss terms whose sum is back-propagated, then the phase's optimizers step;
- `ema_networks()`  the attribute names of networks that get an exponential moving average copy;
- `translate(x, ...)`  inference on images in [-1, 1];
- `export_module(...)`  a pure image -> image nn.Module for ONNX export.

Batches are dicts of tensors already on the device, images as float (N, 3, H, W) in [-1, 1]:
aligned layout: {"A", "B"}; unaligned: {"A", "B"}; domains: {"x", "y", "ref", "ref2", "y_ref"} (y: long labels).

Optional hooks (the end of this file): pieces only some methods have. A method declares one by subclassing it
next to TranslationMethod; the application checks `isinstance` and asks, and never reads a method's networks
(`.G`, `.E`, `.F`), its private members, nor compares its name (tests/test_architecture.py):

- `StyleSource`  multi-domain methods: styles from a reference image or a latent code, the styled generator,
  and the style networks an ONNX export writes next to it (StarGAN v2);
- `LossMaps`  per-location forms of the method's training loss with its trained pieces, for `i2i errormap`
  (CUT's PatchNCE, F/LSeSim's spatially-correlative loss);
- `OfficialRelease`  the parts of the reference implementation's released checkpoint: {part: module}, and the
  directions a converted release translates, for `i2i pretrained`;
- `SegmentationModel`  class logits and colourised label maps, for the FCN-score and a segmenter's own eval;
- `AttentionMasks`  where the translation changes the image (attention-guided CycleGAN), for `--save-masks`;
- `DiffusionBase`  networks made from a pretrained diffusion model the application loads (img2img-turbo).
"""

from __future__ import annotations

import dataclasses
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

Tensor = torch.Tensor
LossDict = dict[str, Tensor]

# Config fields with fixed choices are typed Literal: `--set` and --config files are checked against them
# (i2i_cli/config.py) before a run folder is made.
Direction = Literal["AtoB", "BtoA"]
InitType = Literal["normal", "xavier", "kaiming", "orthogonal"]
Norm = Literal["batch", "instance", "none"]
GanMode = Literal["vanilla", "lsgan", "nonsaturating", "wgangp"]


@dataclass
class MethodConfig:
    """Options every method has. Subclasses add their own, each with the paper's default.

    The schedule is in epochs as in the papers; `i2i train --steps N` rescales it to N iterations.
    """

    size: int = 256  # training crop size; networks are built for it
    load_size: int = 286  # images are resized to this, then randomly cropped to `size` (0 = resize to `size`)
    flip: bool = True  # random horizontal flip
    direction: Direction = "AtoB"  # which side of the data is the source
    batch_size: int = 1  # images per optimizer step, all processes together
    epochs: int = 200  # total epochs (constant lr, then linear decay)
    decay_epochs: int = 100  # the last `decay_epochs` decay the lr linearly to 0 (0 = constant lr)
    lr: float = 2e-4  # learning rate (the schedule scales it)
    beta1: float = 0.5  # Adam's beta1
    beta2: float = 0.999  # Adam's beta2
    init_type: InitType = "normal"  # weight initialisation of the trained networks
    init_gain: float = 0.02  # scale of that initialisation (the std for normal)
    # Options above that a method does not use (hidden by `i2i methods show`, refused by --set).
    unused: ClassVar[tuple[str, ...]] = ()

    # Ranges of the numeric options: none is meaningfully negative; these must be above 0 (widths, sizes, counts,
    # temperatures), and these are fractions in [0, 1] (Adam's betas, averaging rates, shares). A learning rate
    # of 0 is allowed (a run that must leave its weights as loaded, as tests/test_segmenter.py checks).
    positive: ClassVar[tuple[str, ...]] = (
        "size", "batch_size", "ngf", "ndf", "netF_nc", "num_patches", "max_conv_dim", "style_dim",
        "latent_dim", "mapping_dim", "attention_ngf", "base_channels", "n_layers_D", "n_classes", "fan_width",
        "patch_size", "nce_T",
    )
    fractions: ClassVar[tuple[str, ...]] = (
        "beta1", "beta2", "ema_beta", "momentum", "mask_threshold", "top_fraction", "random_resized_crop",
    )

    @classmethod
    def value_problem(cls, name: str, value: Any) -> str | None:
        """What is wrong with `value` for the numeric option `name` (None: it is in range)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if name in cls.positive and not value > 0:
            return "must be greater than 0"
        if name in cls.fractions and not 0 <= value <= 1:
            return "must be between 0 and 1"
        if value < 0:
            return "must be 0 or more"
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def problems(self) -> list[str]:
        """What is wrong with these options together, one line each naming the fix (the application refuses a
        run with any before it starts; a method's constructor raises ValueError for the same)."""
        return []

    def data_spec(self) -> DataSpec:
        """What the training set needs from these options: a config says it, so no method is built to ask."""
        return DataSpec()

    @classmethod
    def options(cls) -> list[dataclasses.Field[Any]]:
        """The fields a user can set for this method."""
        return [f for f in dataclasses.fields(cls) if f.name not in cls.unused]

    # --- what the trainer reads from every config (methods, not fields: `i2i methods show` lists fields) ---
    # Options of this config that a resumed run may change (none by default: each changes what is trained).
    resumable: ClassVar[tuple[str, ...]] = ()

    def total_iterations(self) -> int:
        """The schedule's length in iterations, for methods whose papers count iterations, not epochs (used
        when `epochs` is 0 and no --steps / --epochs is given); 0: the schedule is in epochs."""
        return 0

    def ema_decay(self) -> float:
        """Decay of the moving averages of `ema_networks()` (the weight kept of the average at each step)."""
        return 0.999


@dataclass
class OptimizerSpec:
    """One optimizer over named parameter groups: Adam (the default), AdamW or SGD with momentum.

    `schedule(step, total_steps)` -> lr factor; None: the trainer's constant-then-linear-decay schedule.
    `max_grad_norm` > 0: the trainer clips the gradients of the groups' parameters to that total norm before each
    step (torch's clip_grad_norm_ over the listed parameters, as given: a parameter listed twice counts twice,
    as in reference code that lists it twice)."""

    name: str
    param_groups: list[dict[str, Any]]  # each {"params": [...], optional "lr": float}
    lr: float
    betas: tuple[float, float]
    weight_decay: float = 0.0
    kind: str = "adam"  # adam | adamw | sgd
    momentum: float = 0.0  # sgd only
    schedule: Callable[[int, int], float] | None = None
    eps: float = 1e-8  # adam / adamw
    max_grad_norm: float = 0.0  # 0: no clipping

    def __post_init__(self) -> None:
        if self.kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer {self.name}: kind {self.kind!r} is not adam, adamw or sgd")


@dataclass
class Progress:
    """Where training is, for losses and schedules that depend on it."""

    step: int = 0  # iterations done before this one
    total_steps: int = 1
    epoch: float = 0.0  # fractional epoch (step / steps_per_epoch)
    total_epochs: float = 1.0


@dataclass
class Phase:
    """One step of an iteration: `compute(batch, cache)` -> weighted loss terms; their sum is minimised.

    The trainer zeroes the gradients of `optimizers`, back-propagates the sum, and steps `optimizers`.
    `frozen` names networks whose parameters get requires_grad=False during this phase (e.g. D while G is
    trained), purely to save work. `cache` is a dict shared by the phases of one iteration (e.g. fakes).
    `accumulate` names optimizers of this phase whose gradients are not zeroed first: what earlier phases of the
    iteration left on their parameters is added to (reference code that back-propagates a generator loss through
    an unfrozen discriminator and steps the discriminator without zeroing). The trainer zeroes an optimizer's
    gradients after each of its steps, so only the same iteration's phases can leave any.
    """

    name: str
    optimizers: tuple[str, ...]
    compute: Callable[[dict[str, Tensor], dict[str, Any]], LossDict]
    frozen: tuple[str, ...] = ()
    accumulate: tuple[str, ...] = ()


@dataclass(frozen=True)
class SegmentationData:
    """What a segmenter's training set needs beyond the crop: how label maps are read and how photos are sized."""

    label_side: str = "auto"  # photo | label files: which half is the label map (auto | left | right)
    label_format: str = "auto"  # auto | trainid | cityscapes-id | color
    palette_colors: tuple[int, ...] = ()  # flat r, g, b per class; empty: Cityscapes' colours
    n_classes: int = 19
    load_width: int = 0  # resize to this width first (0: keep; one of width / height 0 keeps the aspect ratio)
    load_height: int = 0
    crop_height: int = 0  # 0: square crops of the config's size
    random_scale: float = 0.0  # > 0: scale by a factor in [1/s, s] before cropping


@dataclass(frozen=True)
class DataSpec:
    """What a method's training set needs beyond its layout (TranslationMethod.accepts) and crop size."""

    random_resized_crop: float = 0.0  # probability (StarGAN v2)
    random_zoom: float = 0.0  # > 0: single-image zoom-and-patch crops, each side zoomed by [1 / this, 1] (SinCUT)
    segmentation: SegmentationData | None = None  # photos + label maps (the segmenter)


class TranslationMethod(nn.Module, metaclass=ABCMeta):
    """Base class of every method. Subclasses set the class variables and implement the hooks."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    code: ClassVar[str] = ""  # the official repository the defaults come from
    # The dataset layouts (i2i_cli/data/layouts) it trains on; the first is the one whose batches it takes, the
    # others can serve them (an aligned A | B set gives unpaired A and B images, or photos and label maps).
    accepts: ClassVar[tuple[str, ...]] = ("unaligned", "aligned")
    # How `i2i eval --checkpoint` scores a run: translate the test split and compare (translation), StarGAN v2's
    # per-task protocol (multidomain), or segment held-out photos against their label maps (segmentation).
    evaluation: ClassVar[Literal["translation", "multidomain", "segmentation"]] = "translation"
    two_sided: ClassVar[bool] = False  # translates both ways (--direction AtoB|BtoA at inference)
    multi_domain: ClassVar[bool] = False
    takes_style_reference: ClassVar[bool] = False
    takes_caption: ClassVar[bool] = False  # translate / export_module take caption="..." (text-conditioned)
    # how `i2i export` traces export_module: torch.export ("dynamo"), or the TorchScript tracer for networks
    # torch.export takes minutes over (diffusers' UNet and VAE: 6 min against 18 s at a tiny size on 2 cores)
    onnx_tracer: ClassVar[Literal["dynamo", "torchscript"]] = "dynamo"

    def __init__(self, config: MethodConfig, domains: list[str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.domains = list(domains or ["A", "B"])

    # --- what the trainer needs --------------------------------------------------------------
    @abstractmethod
    def optimizers(self) -> list[OptimizerSpec]:
        ...

    @abstractmethod
    def phases(self, progress: Progress) -> list[Phase]:
        ...

    def ema_networks(self) -> list[str]:
        return []

    def pretrained_weights(self) -> dict[str, str]:
        """{attribute name: weights-registry name} of fixed pretrained networks the trainer must load.

        The attribute's module must offer `load_pretrained_state_dict(state_dict)` (it maps the publisher's
        keys); files are resolved by i2i_cli.weights, never here.
        """
        return {}

    def inference_weights(self) -> dict[str, str]:
        """The part of pretrained_weights() that translation needs too (e.g. StarGAN v2's face-landmark FAN);
        loaded with a run for inference, export and evaluation."""
        return {}

    def frozen_modules(self) -> list[str]:
        """Attribute names of fixed pretrained networks (e.g. VGG) that are neither trained nor saved."""
        return []

    def training_state(self) -> dict[str, Any]:
        """Non-parameter state needed to resume exactly (e.g. image pools): tensors and plain values."""
        return {}

    def load_training_state(self, state: dict[str, Any]) -> None:
        return None

    @abstractmethod
    def sample_rows(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Named rows of images (N, 3, H, W) in [-1, 1] for the training sample grid."""
        ...

    # --- inference ------------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (pad to it at inference)."""
        return 4

    @property
    def min_size(self) -> int:
        """Smaller inputs are refused: below this, padding would be most of what the network sees."""
        return 8

    @property
    def export_size_multiple(self) -> int:
        """Heights and widths an ONNX graph with dynamic sizes stays exact for (what its metadata tells ONNX
        translation to pad to). A network that picks its shapes in Python by the input size (a UNet that
        resizes its skips when a level's size is odd) is traced on one branch: it needs larger multiples."""
        return self.size_multiple

    @abstractmethod
    def translate(self, x: Tensor, direction: str = "AtoB", **kwargs: Any) -> Tensor:
        ...

    @abstractmethod
    def export_module(self, direction: str = "AtoB", **kwargs: Any) -> nn.Module:
        """A pure image -> image module (N, 3, H, W) in [-1, 1] for ONNX export."""
        ...

    # --- saving ---------------------------------------------------------------------------------
    def saved_state_dict(self) -> dict[str, Tensor]:
        """Weights to save: everything except frozen pretrained modules."""
        frozen = tuple(name + "." for name in self.frozen_modules())
        return {k: v for k, v in self.state_dict().items() if not k.startswith(frozen)}

    def load_saved_state_dict(self, state: dict[str, Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        frozen = tuple(name + "." for name in self.frozen_modules())
        missing = [k for k in missing if not k.startswith(frozen)]
        if missing or unexpected:
            raise KeyError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")


def set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(flag)


# --- optional hooks: pieces only some methods have (see the module docstring) ----------------------------------
class StyleSource(metaclass=ABCMeta):
    """A multi-domain method that translates with a style code, from a reference image or a latent code.

    Domains are long tensors of indices into the method's `domains`, one per row."""

    @property
    @abstractmethod
    def latent_dim(self) -> int:
        """Length of the latent codes `style_from_latent` takes."""

    @property
    @abstractmethod
    def style_dim(self) -> int:
        """Length of a style code."""

    @property
    @abstractmethod
    def style_size(self) -> int:
        """The side references are resized to before the style encoder (the training size)."""

    @abstractmethod
    def style_from_reference(self, ref: Tensor, domain: Tensor) -> Tensor:
        """(N, 3, H, W) references in [-1, 1] (any size) -> (N, style_dim) style codes in `domain`."""

    @abstractmethod
    def style_from_latent(self, z: Tensor, domain: Tensor) -> Tensor:
        """(N, latent_dim) latent codes -> (N, style_dim) style codes in `domain`."""

    @abstractmethod
    def styled_generator(self) -> nn.Module:
        """(image, style) -> image: what translation runs once the style is chosen."""

    @abstractmethod
    def style_networks(self) -> dict[str, nn.Module]:
        """Copies in eval mode of {"style_encoder": (reference at style_size, domain) -> style,
        "mapping": (z, domain) -> style}: what an ONNX export writes next to the generator."""


@dataclass
class LossMap:
    """A per-location loss: fn(x, y), images (1, 3, H, W) in [-1, 1] -> errors (h, w) at the loss's own
    resolution; `note` says what it is computed with (shown in the figure and the JSON)."""

    fn: Callable[[Tensor, Tensor], Tensor]
    note: str = ""


class LossMaps(metaclass=ABCMeta):
    """A method whose training loss has a per-location form drawn with its trained pieces (`i2i errormap`)."""

    # the loss-map names loss_maps() gives, known from the class (before any weights load)
    loss_map_names: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def loss_maps(self, weights: str = "") -> dict[str, LossMap]:
        """{name in loss_map_names: LossMap}; `weights` names where the trained weights came from (for the
        notes). Fixed pretrained networks (pretrained_weights()) must be loaded first."""


class OfficialRelease(metaclass=ABCMeta):
    """A method whose reference implementation publishes checkpoints that convert into its networks."""

    # what a converted release translates ("AtoB" only for one-generator files); () = every direction
    release_directions: ClassVar[tuple[str, ...]] = ()
    # what to check when a release does not fit the networks built from the config ("" = the usual options)
    release_hint: ClassVar[str] = ""

    @abstractmethod
    def release_parts(self) -> dict[str, nn.Module]:
        """{part of the released file: the module its state_dict loads into}; part "" is the whole file."""


class SegmentationModel(metaclass=ABCMeta):
    """A method that predicts class maps (a segmenter for the FCN-score)."""

    @property
    @abstractmethod
    def n_classes(self) -> int:
        ...

    @abstractmethod
    def logits(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) photos in [-1, 1] -> (N, n_classes, H, W) logits."""

    @abstractmethod
    def colorize(self, classes: Tensor) -> Tensor:
        """(N, H, W) class ids -> (N, 3, H, W) colours in [-1, 1]."""


class AttentionMasks(metaclass=ABCMeta):
    """A method that translates only where an attention network looks (`i2i translate --save-masks`)."""

    @abstractmethod
    def attention_mask(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 1, H, W) in [0, 1]: where the translation in `direction` changes x."""

    @abstractmethod
    def mask_module(self, direction: str = "AtoB") -> nn.Module:
        """attention_mask of `direction` as a pure image -> mask module (a copy in eval mode), as
        export_module is for the translation."""


class DiffusionBase(metaclass=ABCMeta):
    """A method built on a pretrained text-to-image diffusion model (img2img-turbo on sd-turbo).

    Its networks are made from the base model's parts, which no config holds: the application loads the model
    that `base_model_reference()` names (a Hub id, `hf://OWNER/NAME[@REV]` or a folder in the diffusers layout;
    i2i_cli/diffusion) and hands it to `attach_base_model` right after construction, before any weights load and
    before training, translation or export. A run saves only what it trains (saved_state_dict) and the reference
    in its config, so a checkpoint is rebuilt from the same base model.
    """

    @abstractmethod
    def base_model_reference(self) -> str:
        """Where the base model comes from (a Hub id, hf:// reference or local folder)."""

    @abstractmethod
    def attach_base_model(self, parts: Any) -> None:
        """Build the networks from `parts` (.unet, .vae, .text_encoder, .tokenizer, .scheduler_config)."""
