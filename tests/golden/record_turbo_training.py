"""Record tests/golden/turbo_training_pix2pix.pt and turbo_training_cyclegan.pt: ONE training iteration of
img2img-turbo's pix2pix-Turbo (src/train_pix2pix_turbo.py) and CycleGAN-Turbo (src/train_cyclegan_turbo.py, at
PR #62's fix and before it) at tiny configurations, in float64, seeded. tests/golden/turbo_training_format.md
describes the fixtures' keys.

Runs outside CI (about 5 minutes on 2 cores; `... record_turbo_training.py cyclegan` records CycleGAN-Turbo
only) against four checkouts (none is copied here):

    I2I_OFFICIAL_IMG2IMG_TURBO=/tmp/official/turbo \\              # GaParmar/img2img-turbo 86f5414 (HEAD)
    I2I_OFFICIAL_IMG2IMG_TURBO_PRE62=/tmp/official/turbo_pre62 \\  # its 573dfdd: the parent of 296fa53 (PR #62)
    I2I_OFFICIAL_CLIP=/tmp/official/clip \\                        # openai/CLIP d05afc4 (the `clip` package)
    I2I_OFFICIAL_VISION_AIDED_LOSS=/tmp/official/vision_aided \\   # the vision_aided_loss 0.1.0 wheel, unpacked
    OMP_NUM_THREADS=1 python tests/golden/record_turbo_training.py

(`git rev-parse HEAD` in a checkout gives its commit, or <VARIABLE>_COMMIT). Packages: diffusers, transformers,
peft, accelerate, lpips 0.1.4, ftfy and regex (CLIP's tokenizer); vision_aided_loss imports timm,
antialiased_cnns, gdown and pkg_resources, whose code it never runs here: their imports are stubbed.

How the official code runs. The loop body is the official text: each script's `main()` is parsed (ast) and its
top-level statements are executed in order in one namespace (the script's own imports executed first), except the
statements that need files, a dataset, trackers or the Hub (SKIPPED below: output folders, datasets and loaders,
FID references, wandb trackers, progress bars, the tokenizer calls of the fixed captions, whose token ids are
given instead); the training `for` loops are replaced by ONE execution of the inner body up to and including its
`with accelerator.accumulate(...)` block (the logging and checkpointing after it are skipped), `batch` given.
Two rewrites: `torch.float32` -> `torch.float64` in the executed script text (the scripts' weight_dtype) and,
while recording, `Tensor.float()` and `Tensor.type(torch.float32)` called from the official code (the scripts,
vision_aided_loss, CLIP) give float64: its float32 casts, no-ops in its float32 training, would otherwise
truncate this float64 run (the libraries' own casts, e.g. diffusers' float32 timestep embedding, are kept).
The real accelerate.Accelerator runs (1.16, on the CPU; its clip_grad_norm_ computes what
torch.nn.utils.clip_grad_norm_, which the accelerate of 2024 called, computes).
Before-#62 is the same run with the loop body taken from the pre-#62 script (src/cyclegan_turbo.py, model.py and
my_utils/ are byte-identical at both commits; checked).

Tiny pieces (record_turbo_generator's patches: TINY_UNET / TINY_VAE / TINY_TEXT, SKIP_CHANNELS, no cuda):
- LoRA ranks: pix2pix-Turbo unet 8 / vae 4 (the defaults); CycleGAN-Turbo unet 4 (default 128) / vae 2
  (default 4), images (2, 3, 16, 32): the fixtures stay under 2 MB.
- After the setup, every LoRA B matrix (zero at init) is set to 0.1 * N(0, 1) from a seeded generator (so every
  LoRA A gets a gradient), and every generator and discriminator-head weight and buffer is rounded to float32
  (so the fixture stores them as float32 exactly).
- LPIPS: `lpips.LPIPS(net='vgg')` as called, with torchvision's vgg16 features filled by `seeded_vgg16_features`
  (full widths, redrawn by the replay); its linear heads are the lpips package's own weights (stored).
- CLIP: both `clip.load("ViT-B/32")` (openai/CLIP, the CLIP-sim loss) and vision_aided_loss's bundled
  `clip.load` return a `clip.model.CLIP(**TINY_CLIP)` with `seeded_clip_state` weights (the two loaders get the
  same weights, as both load the same ViT-B/32 file); logit_scale = ln 100 (ViT-B/32's trained value, which
  the CLIP-sim loss's `/ 100` assumes).
- vision_aided_loss: its CLIP wrapper's hard-coded ViT-B/32 width in `reshape(-1, 768, 7, 7).float()` becomes
  TINY_CLIP's vision width (source text replaced at import, twice), and MultiLevelDViT's channels 768 / 512 /
  256 are mapped by DISC_CHANNELS (constructor arguments). Spectral norm's u, v are drawn at construction
  (stored in `initial`) and updated by every discriminator forward (the last forward's are stored).
- AdamW runs with foreach=True, the implementation torch picks by default on CUDA (on this CPU the foreach ops
  run tensor by tensor, in list order); the optimizers' param lists are the official ones, duplicates included.
- The one-step DDPMScheduler is made with torch's default dtype float32, as in the official run (everything
  else is made in float64): its constant `one` (alpha_prod_t_prev at t = 999) is then float32, so CycleGAN-Turbo's
  per-sample step (0-d timesteps, where 0-d float32 and float64 tensors promote to float64) multiplies x0 by
  exactly 1, as the float32 original does, not by (1 - a)_64 / (1 - a)_32 = 1 + 3e-8.
Random draws (the VAE posterior's randn, the DDPM step's randn, DiffAugment's rand / randint) are recorded in
call order with the forward they belong to; the replay feeds them back.
"""

from __future__ import annotations

import ast
import importlib
import math
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent
SEED = 31
LORA_B_SEED = 32
VGG_SEED = 33
CLIP_SEED = 34
SHAPE = (2, 3, 16, 32)
TINY_CLIP = {"embed_dim": 16, "image_resolution": 224, "vision_layers": 12, "vision_width": 128,
             "vision_patch_size": 32, "context_length": 77, "vocab_size": 49408, "transformer_width": 16,
             "transformer_heads": 2, "transformer_layers": 2}
DISC_CHANNELS = {768: TINY_CLIP["vision_width"], 512: TINY_CLIP["embed_dim"], 256: 4}
CAPTIONS = ["a red car on a wet street", "a small house at night"]
PAIRED_ARGS = ["--dataset_folder", "unused", "--output_dir", "unused", "--pretrained_model_name_or_path",
               "stabilityai/sd-turbo"]
UNPAIRED_ARGS = ["--dataset_folder", "unused", "--output_dir", "unused", "--train_img_prep", "unused",
                 "--val_img_prep", "unused", "--tracker_project_name", "unused", "--lora_rank_unet", "4",
                 "--lora_rank_vae", "2", "--max_train_steps", "25000"]
SKIPPED = ("os.makedirs", "Dataset(", "DataLoader(", "dataset_train", "build_transform", "l_images_",
           "init_trackers", "tqdm(", "track_val_fid", "= tokenizer(", "feat_model")
VGG_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
             14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512),
             28: (512, 512)}


def seeded_vgg16_features(seed: int = VGG_SEED) -> dict[str, torch.Tensor]:
    """torchvision vgg16().features weights (keys `<index>.weight/bias`) in float64 from one generator, index
    order: He-scaled normal weights, biases N(0, 0.01^2). The replay rebuilds LPIPS's VGG with this."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (out_channels, in_channels) in VGG_CONVS.items():
        state[f"{index}.weight"] = torch.randn(out_channels, in_channels, 3, 3, generator=generator,
                                               dtype=torch.float64) * (2.0 / (9 * in_channels)) ** 0.5
        state[f"{index}.bias"] = 0.01 * torch.randn(out_channels, generator=generator, dtype=torch.float64)
    return state


def seeded_clip_state(keys: list[str], shapes: list[list[int]], seed: int = CLIP_SEED) -> dict[str, torch.Tensor]:
    """A `clip.model.CLIP(**TINY_CLIP)` state dict (keys and shapes in the fixture's `clip` entry, state-dict
    order) in float64 from one generator: LayerNorm weights 1 + 0.1 n, biases and embeddings 0.02 n, matrices
    n / sqrt(fan_in) (fan_in: the input width; `proj` and `text_projection` multiply from the right, so theirs
    is the first dimension), logit_scale ln 100."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in zip(keys, shapes):
        noise = torch.randn(shape, generator=generator, dtype=torch.float64)
        leaf = key.rsplit(".", 1)[-1]
        if key == "logit_scale":
            state[key] = torch.tensor(math.log(100.0), dtype=torch.float64).reshape(shape)
        elif (".ln_" in key or key.startswith("ln_") or "ln_post" in key) and leaf == "weight":
            state[key] = 1 + 0.1 * noise
        elif leaf in ("bias", "in_proj_bias") or len(shape) < 2 or "embedding" in key:
            state[key] = 0.02 * noise
        elif key.endswith("proj") or key == "text_projection":
            state[key] = noise / math.sqrt(shape[0])
        else:
            state[key] = noise / math.sqrt(math.prod(shape[1:]))
    return state


def _checkout(variable: str) -> tuple[Path, str]:
    root = os.environ.get(variable)
    if not root:
        sys.exit(f"set {variable} (see this script's docstring)")
    commit = os.environ.get(f"{variable}_COMMIT") or subprocess.run(
        ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "unknown"
    return Path(root), commit


class Recorder:
    """Everything recorded while the official code runs, in call order."""

    def __init__(self) -> None:
        self.label = "setup"
        self.counts: dict[str, int] = {}
        self.draws: list[dict] = []
        self.terms: list[dict] = []
        self.outputs: list[dict] = []
        self.disc_buffers: dict[str, dict] = {}
        self.clips: list[dict] = []
        self.steps: list[dict] = []
        self.names: dict[int, str] = {}
        self.modules: dict[int, str] = {}

    def enter(self, name: str) -> str:
        self.counts[name] = self.counts.get(name, 0) + 1
        previous, self.label = self.label, f"{name} #{self.counts[name]}"
        return previous

    def draw(self, kind: str, value: torch.Tensor) -> None:
        if self.label != "setup":  # the loop's draws; construction's (LoRA init, spectral norm's u, v) are state
            self.draws.append({"forward": self.label, "kind": kind, "value": value.detach().clone()})

    def term(self, what: str, value: torch.Tensor) -> None:
        self.terms.append({"forward": self.label, "what": what, "value": value.detach().clone()})


REC = Recorder()


def _stub_imports() -> None:
    """vision_aided_loss imports these at module level; the code paths used here never call them."""
    import packaging.version

    for name in ("timm", "antialiased_cnns", "gdown"):
        sys.modules.setdefault(name, types.ModuleType(name))
    pkg_resources = types.ModuleType("pkg_resources")
    pkg_resources.packaging = importlib.import_module("packaging")
    pkg_resources.packaging.version = packaging.version
    sys.modules.setdefault("pkg_resources", pkg_resources)


def _tiny_clip_loader(clip_model_module) -> Callable:
    def load(name, device="cpu", jit=False, **kwargs):
        model = clip_model_module.CLIP(**TINY_CLIP)
        state = model.state_dict()
        model.load_state_dict(seeded_clip_state(list(state), [list(v.shape) for v in state.values()]))
        return model.double().eval(), None

    return load


def _patch_vision_aided() -> None:
    cvmodel = importlib.import_module("vision_aided_loss.cvmodel")
    source = Path(cvmodel.__file__).read_text()
    old = "reshape(-1, 768, 7, 7).float()"  # the CLIP wrapper's two (Swin's has no .float())
    assert source.count(old) == 2, "vision_aided_loss's CLIP wrapper changed"
    new = f"reshape(-1, {TINY_CLIP['vision_width']}, 7, 7).float()"
    exec(compile(source.replace(old, new), cvmodel.__file__, "exec"),
         cvmodel.__dict__)
    bundled = importlib.import_module("vision_aided_loss.CLIP.clip.clip")
    bundled.load = _tiny_clip_loader(importlib.import_module("vision_aided_loss.CLIP.clip.model"))
    discriminator = importlib.import_module("vision_aided_loss.cv_discriminator")
    official_dvit = discriminator.MultiLevelDViT

    class TinyMultiLevelDViT(official_dvit):
        def __init__(self, level=3, in_ch1=768, in_ch2=512, out_ch=256, **kwargs):
            super().__init__(level, DISC_CHANNELS[in_ch1], DISC_CHANNELS[in_ch2], DISC_CHANNELS[out_ch], **kwargs)

    discriminator.MultiLevelDViT = TinyMultiLevelDViT
    augment = importlib.import_module("vision_aided_loss.DiffAugment_pytorch")
    augment.torch = _RecordingTorch()
    _label_discriminator(discriminator.Discriminator)


class _RecordingTorch(types.SimpleNamespace):
    """DiffAugment's `torch`: rand and randint are recorded, everything else is torch's."""

    def __getattr__(self, name):
        return getattr(torch, name)

    def rand(self, *args, **kwargs):
        value = torch.rand(*args, **kwargs)
        REC.draw("diffaug_rand", value)
        return value

    def randint(self, *args, **kwargs):
        value = torch.randint(*args, **kwargs)
        REC.draw("diffaug_randint", value)
        return value


def _label_discriminator(cls) -> None:
    forward = cls.forward

    def labelled(self, images, c=None, detach=False, **kwargs):
        mode = "for_G" if kwargs.get("for_G") else f"for_real={kwargs.get('for_real', True)}"
        previous = REC.enter(f"{REC.modules.get(id(self), 'disc')}({mode})")
        try:
            loss = forward(self, images, c, detach, **kwargs)
            REC.term("disc_loss_per_sample", loss)
            REC.disc_buffers[REC.modules.get(id(self), "disc")] = {  # the last forward's are kept
                k: v.detach().clone() for k, v in self.decoder.state_dict().items() if k.endswith(("_u", "_v"))}
            return loss
        finally:
            REC.label = previous

    cls.forward = labelled


def _label_generators(pix2pix_cls, cyclegan_cls) -> None:
    forward = pix2pix_cls.forward

    def pix2pix_forward(self, c_t, *args, **kwargs):
        previous = REC.enter("net_pix2pix")
        try:
            output = forward(self, c_t, *args, **kwargs)
            REC.outputs.append({"forward": REC.label, "value": output.detach().clone()})
            return output
        finally:
            REC.label = previous

    pix2pix_cls.forward = pix2pix_forward
    with_networks = cyclegan_cls.forward_with_networks

    def forward_with_networks(x, direction, *args):
        previous = REC.enter(f"forward_with_networks({direction})")
        try:
            output = with_networks(x, direction, *args)
            REC.outputs.append({"forward": REC.label, "value": output.detach().clone()})
            return output
        finally:
            REC.label = previous

    cyclegan_cls.forward_with_networks = staticmethod(forward_with_networks)


def _patch_noise_draws() -> None:
    from diffusers.models.autoencoders import vae as vae_module
    from diffusers.schedulers import scheduling_ddpm

    for module, kind in ((vae_module, "vae_posterior"), (scheduling_ddpm, "ddpm_step")):
        draw = module.randn_tensor

        def recording(*args, _draw=draw, _kind=kind, **kwargs):
            value = _draw(*args, **kwargs)
            REC.draw(_kind, value)
            return value

        module.randn_tensor = recording


def _patch_lpips_vgg() -> None:
    import torchvision
    from lpips import pretrained_networks

    def vgg16(*args, **kwargs):
        model = torchvision.models.vgg16(weights=None)
        model.features.load_state_dict(seeded_vgg16_features())
        return model

    pretrained_networks.tv = types.SimpleNamespace(vgg16=vgg16)


class _ForeachAdamW(torch.optim.AdamW):
    """torch.optim.AdamW as on CUDA, where torch defaults to foreach=True."""

    def __init__(self, params, *args, foreach=None, **kwargs):
        super().__init__(params, *args, foreach=True, **kwargs)


def _patch_clip_grad_norm() -> None:
    """Accelerator.clip_grad_norm_ recorded: the total norm, the coefficient, and by how much each parameter's
    gradient was actually scaled (a parameter listed twice is scaled twice: the foreach multiply runs over the
    list). accelerate 1.16 computes the same norm as torch.nn.utils.clip_grad_norm_ (which older accelerate
    called) through get_total_norm + clip_grads_with_norm_."""
    from accelerate import Accelerator

    official = Accelerator.clip_grad_norm_

    def recording(self, parameters, max_norm, norm_type=2):
        parameters = list(parameters)
        before = {id(p): p.grad.clone() for p in parameters if p.grad is not None}
        total = official(self, parameters, max_norm, norm_type)
        factors = {}
        for p in parameters:
            if id(p) in before and float(before[id(p)].abs().max()) > 0:
                index = before[id(p)].abs().argmax()
                factors[REC.names[id(p)]] = float(p.grad.flatten()[index] / before[id(p)].flatten()[index])
        REC.clips.append({"before_step": len(REC.steps), "max_norm": float(max_norm),
                          "total_norm": total.detach().clone(), "coef": min(1.0, max_norm / (float(total) + 1e-6)),
                          "param_names": [REC.names[id(p)] for p in parameters], "grad_scaled_by": factors})
        return total

    Accelerator.clip_grad_norm_ = recording


class _ToFloat64(ast.NodeTransformer):
    """`torch.float32` in the executed script text -> `torch.float64` (the scripts' weight_dtype)."""

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if node.attr == "float32" and isinstance(node.value, ast.Name) and node.value.id == "torch":
            return ast.copy_location(ast.Attribute(value=node.value, attr="float64", ctx=node.ctx), node)
        return self.generic_visit(node)


def _execute(statement: ast.stmt, path: Path, namespace: dict) -> None:
    module = ast.fix_missing_locations(ast.Module(body=[_ToFloat64().visit(statement)], type_ignores=[]))
    exec(compile(module, str(path), "exec"), namespace)


def run_script(path: Path, namespace: dict, before_loop: Callable[[dict], None]) -> list[str]:
    """Execute the script's imports, then main()'s top-level statements in order (SKIPPED ones left out), and
    in place of the epoch loop ONE pass of its inner body up to its `with accelerator.accumulate` block.
    Returns what was left out (imports that failed, skipped statements' first lines)."""
    source = path.read_text()
    tree = ast.parse(source)
    left_out = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            try:
                _execute(node, path, namespace)
            except ImportError:
                left_out.append(ast.get_source_segment(source, node))
    main = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main")
    for statement in main.body:
        text = ast.get_source_segment(source, statement)
        if isinstance(statement, ast.For) and isinstance(statement.body[0], ast.For):
            before_loop(namespace)
            REC.label = "loop"
            namespace.update(epoch=0, step=0)
            for inner in statement.body[0].body:
                _execute(inner, path, namespace)
                if isinstance(inner, ast.With):
                    break
        elif any(skip in text for skip in SKIPPED):
            left_out.append(text.splitlines()[0])
        else:
            _execute(statement, path, namespace)
    return left_out


def _float32_means_float64(official_folders: list[Path]) -> None:
    """`Tensor.float()` and `Tensor.type(torch.float32)` give float64 when called from the official code (the
    training scripts, vision_aided_loss, CLIP): its float32 casts, no-ops in its float32 training, would
    otherwise truncate this float64 run. Calls from the libraries (diffusers' float32 timestep embedding,
    transformers, torch) keep their meaning, as in record_turbo_generator's float64 run."""
    prefixes = tuple(str(folder.resolve()) for folder in official_folders)
    to_type, to_float = torch.Tensor.type, torch.Tensor.float

    def official_caller() -> bool:
        return os.path.realpath(sys._getframe(2).f_code.co_filename).startswith(prefixes)

    def type_(self, dtype=None, non_blocking=False, **kwargs):
        if dtype is None:
            return to_type(self)
        if dtype in (torch.float32, "torch.FloatTensor") and official_caller():
            dtype = torch.float64
        return to_type(self, dtype, non_blocking, **kwargs)

    def float_(self, memory_format=torch.preserve_format):
        if official_caller():
            return self.to(torch.float64, memory_format=memory_format)
        return to_float(self, memory_format=memory_format)

    torch.Tensor.type = type_
    torch.Tensor.float = float_


def _parse(parse: Callable, argv: list[str]):
    saved = sys.argv
    sys.argv = ["train", *argv]
    try:
        return parse()
    finally:
        sys.argv = saved


def _prepare_environment() -> dict[str, object]:
    """Every patch (see the docstring), the official modules imported; returns the checkouts' commits."""
    sys.path.insert(0, str(GOLDEN))
    generator_recorder = importlib.import_module("record_turbo_generator")
    root, commit = _checkout("I2I_OFFICIAL_IMG2IMG_TURBO")
    pre62, commit_pre62 = _checkout("I2I_OFFICIAL_IMG2IMG_TURBO_PRE62")
    for shared in ("cyclegan_turbo.py", "model.py", "my_utils/training_utils.py"):
        assert (root / "src" / shared).read_bytes() == (pre62 / "src" / shared).read_bytes(), shared
    clip_root, clip_commit = _checkout("I2I_OFFICIAL_CLIP")
    vision_aided_root = Path(os.environ.get("I2I_OFFICIAL_VISION_AIDED_LOSS") or sys.exit("set "
                             "I2I_OFFICIAL_VISION_AIDED_LOSS to the unpacked vision_aided_loss 0.1.0 wheel"))
    one_step_scheduler = generator_recorder._patch_environment()  # tiny from_pretrained, no cuda, SkipConv
    skip_conv = torch.nn.Conv2d

    class SkipConvKeywords(skip_conv):  # the generator recorder's SkipConv, also called with keywords (CLIP's)
        def __init__(self, in_channels, out_channels, kernel_size, *args, **kwargs):
            super().__init__(in_channels, out_channels, kernel_size, *args, **kwargs)

    torch.nn.Conv2d = SkipConvKeywords
    torch.set_default_dtype(torch.float64)
    _stub_imports()
    sys.path[:0] = [str(root / "src"), str(clip_root), str(vision_aided_root)]

    def float32_scheduler():  # made as in the official float32 run: its constant `one` float32 (see docstring)
        torch.set_default_dtype(torch.float32)
        try:
            return one_step_scheduler()
        finally:
            torch.set_default_dtype(torch.float64)

    for name in ("model", "pix2pix_turbo", "cyclegan_turbo"):
        importlib.import_module(name).make_1step_sched = float32_scheduler
    clip = importlib.import_module("clip")
    clip.load = _tiny_clip_loader(importlib.import_module("clip.model"))
    _patch_vision_aided()
    _patch_lpips_vgg()
    _patch_noise_draws()
    _patch_clip_grad_norm()
    torch.optim.AdamW = _ForeachAdamW
    _float32_means_float64([root / "src", pre62 / "src", clip_root, vision_aided_root])
    _label_generators(importlib.import_module("pix2pix_turbo").Pix2Pix_Turbo,
                      importlib.import_module("cyclegan_turbo").CycleGAN_Turbo)
    return {"root": root, "pre62": pre62, "official_commit": commit, "official_commit_pre62": commit_pre62,
            "clip_commit": clip_commit}


def _set_lora_b_and_round(modules: list[torch.nn.Module], generator: torch.Generator) -> None:
    """LoRA B (zero at init) <- 0.1 N(0, 1); every floating weight and buffer rounded to float32 values."""
    with torch.no_grad():
        for module in modules:
            for name, param in module.named_parameters():
                if "lora_B" in name:
                    param.copy_(0.1 * torch.randn(param.shape, generator=generator, dtype=torch.float64))
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.is_floating_point():
                    tensor.copy_(tensor.to(torch.float32))


def _name_parameters(modules: dict[str, torch.nn.Module]) -> None:
    for prefix, module in modules.items():
        REC.modules[id(module)] = prefix
        for name, param in module.named_parameters():
            REC.names.setdefault(id(param), f"{prefix}.{name}")


def _hook_optimizer(optimizer, name: str) -> dict:
    """For every step(): the gradients at the step (after clipping; float64) and the step itself (after - before,
    float32), each one flat vector over the optimizer's `trained` parameters (unique, first-occurrence order),
    and AdamW's per-parameter step counters after it."""
    inner = getattr(optimizer, "optimizer", optimizer)
    group = inner.param_groups[0]
    trained = list({id(p): p for p in group["params"] if p.requires_grad}.values())

    def before(opt, args, kwargs):
        assert all(p.grad is not None for p in trained), name
        REC.steps.append({"optimizer": name, "grads": torch.cat([p.grad.detach().flatten() for p in trained]),
                          "before": torch.cat([p.detach().flatten() for p in trained])})

    def after(opt, args, kwargs):
        flat = torch.cat([p.detach().flatten() for p in trained])
        REC.steps[-1]["step"] = (flat - REC.steps[-1].pop("before")).to(torch.float32)
        REC.steps[-1]["adam_step_count"] = torch.tensor([float(opt.state[p]["step"]) for p in trained])

    inner.register_step_pre_hook(before)
    inner.register_step_post_hook(after)
    return {"param_names": [REC.names[id(p)] for p in group["params"]],
            "requires_grad": [bool(p.requires_grad) for p in group["params"]],
            "trained": [REC.names[id(p)] for p in trained], "trained_shapes": [list(p.shape) for p in trained],
            "hyper": {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items()
                      if k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach")}}


class _RecordingFunctional(types.SimpleNamespace):
    """The loop's `F`: mse_loss recorded (unweighted), everything else torch.nn.functional's."""

    def __getattr__(self, name):
        return getattr(torch.nn.functional, name)

    def mse_loss(self, *args, **kwargs):
        value = torch.nn.functional.mse_loss(*args, **kwargs)
        REC.term("mse", value)
        return value


def _hook_terms(namespace: dict, modules: dict[str, str]) -> None:
    """Unweighted loss terms in call order: forward hooks on the loss modules named (namespace name -> what)."""
    def hook(what: str):
        def record(module, inputs, output):
            REC.term(what, output[0] if isinstance(output, tuple) else output)
        return record

    for name, what in modules.items():
        namespace[name].register_forward_hook(hook(what))
    namespace["F"] = _RecordingFunctional()


def _pack(module: torch.nn.Module) -> dict[str, object]:
    """The state dict packed into one float32 vector (its values are float32-exact, _set_lora_b_and_round)."""
    state = module.state_dict()
    return {"keys": list(state), "shapes": [list(v.shape) for v in state.values()],
            "flat": torch.cat([v.detach().to(torch.float32).flatten() for v in state.values()])}


def _pack_differences(module: torch.nn.Module, reference: torch.nn.Module) -> dict[str, object]:
    """_pack of the entries where module differs from reference (vae_b2a is the official deepcopy of vae_a2b;
    only the LoRA B matrices set afterwards differ)."""
    state, same = module.state_dict(), reference.state_dict()
    keys = [k for k in state if not torch.equal(state[k], same[k])]
    return {"keys": keys, "shapes": [list(state[k].shape) for k in keys],
            "flat": torch.cat([state[k].detach().to(torch.float32).flatten() for k in keys])}


def _lpips_and_clip(namespace: dict) -> dict[str, object]:
    lpips_state = {k: v.detach().clone() for k, v in namespace["net_lpips"].state_dict().items()
                   if not k.startswith("net.")}
    clip_model = importlib.import_module("clip.model").CLIP(**TINY_CLIP)
    state = clip_model.state_dict()
    return {"lpips": {"state": lpips_state, "vgg_seed": VGG_SEED, "vgg_keys": list(seeded_vgg16_features())},
            "clip": {"config": dict(TINY_CLIP), "seed": CLIP_SEED, "keys": list(state),
                     "shapes": [list(v.shape) for v in state.values()]}}


PIX2PIX_PHASES = ["reconstruction", "generator_gan", "disc_real", "disc_fake"]
CYCLEGAN_PHASES = ["cycle", "generator_gan", "identity", "disc_fake", "disc_real"]


def _recorded(phases: list[str], optimizers: dict[str, dict]) -> dict[str, object]:
    """The records; each clip's `param_names` becomes the name of the optimizer whose list it is (when it is) and
    its `grad_scaled_by` a vector over that optimizer's `trained` (NaN where a gradient was all zero)."""
    assert len(REC.steps) == len(phases) == len(REC.clips), (len(REC.steps), len(REC.clips))
    for step, phase in zip(REC.steps, phases):
        step["phase"] = phase
    for clip in REC.clips:
        optimizer = optimizers[REC.steps[clip["before_step"]]["optimizer"]]
        if clip["param_names"] == optimizer["param_names"]:
            clip["param_names"] = REC.steps[clip["before_step"]]["optimizer"]
        factors = clip["grad_scaled_by"]
        clip["grad_scaled_by"] = torch.tensor([factors.get(n, math.nan) for n in optimizer["trained"]])
    return {"steps": REC.steps, "clips": REC.clips, "terms": REC.terms, "draws": REC.draws,
            "outputs": REC.outputs, "disc_buffers_final": REC.disc_buffers}


def _losses(namespace: dict, names: list[str]) -> dict[str, torch.Tensor]:
    return {name: namespace[name].detach().clone() for name in names}


PIX2PIX_LOSSES = ["loss_l2", "loss_lpips", "loss_clipsim", "loss", "lossG", "lossD_real", "lossD_fake", "lossD"]
CYCLEGAN_LOSSES = ["loss_cycle_a", "loss_cycle_b", "loss_gan_a", "loss_gan_b", "loss_idt_a", "loss_idt_b",
                   "loss_g_idt", "loss_D_A_fake", "loss_D_B_fake", "loss_D_fake", "loss_D_A_real", "loss_D_B_real",
                   "loss_D_real"]
ARG_KEYS = ["learning_rate", "adam_beta1", "adam_beta2", "adam_weight_decay", "adam_epsilon", "max_grad_norm",
            "gan_loss_type", "lambda_gan", "lambda_lpips", "lambda_l2", "lambda_clipsim", "lambda_idt", "lambda_cycle",
            "lambda_cycle_lpips", "lambda_idt_lpips", "lora_rank_unet", "lora_rank_vae", "lr_scheduler",
            "gradient_accumulation_steps", "set_grads_to_none"]


def _common(env: dict, args, left_out: list[str]) -> dict[str, object]:
    generator_recorder = importlib.import_module("record_turbo_generator")
    return {"official_repo": "GaParmar/img2img-turbo", "official_commit": env["official_commit"],
            "clip_repo": "openai/CLIP", "clip_commit": env["clip_commit"], "vision_aided_loss": "0.1.0 (PyPI wheel)",
            "dtype": "float64", "torch": str(torch.__version__), "adamw": "torch.optim.AdamW(foreach=True), on the CPU",
            "args": {k: getattr(args, k) for k in ARG_KEYS if hasattr(args, k)},
            "config": {"unet": generator_recorder.TINY_UNET, "vae": generator_recorder.TINY_VAE,
                       "text": generator_recorder.TINY_TEXT, "scheduler": generator_recorder.SCHEDULER,
                       "skip_channels": generator_recorder.SKIP_CHANNELS, "clip": TINY_CLIP,
                       "disc_channels": DISC_CHANNELS},
            "skipped_statements": left_out}


def record_pix2pix(env: dict) -> dict[str, object]:
    REC.__init__()
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    clip = importlib.import_module("clip")
    text_vocab = importlib.import_module("record_turbo_generator").TINY_TEXT["vocab_size"]
    batch = {"conditioning_pixel_values": torch.rand(SHAPE, generator=generator, dtype=torch.float64),
             "output_pixel_values": torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1,
             "input_ids": torch.randint(0, text_vocab, (SHAPE[0], 77), generator=generator),
             "caption": list(CAPTIONS)}
    saved: dict[str, object] = {}

    def before_loop(namespace: dict) -> None:
        model, disc = namespace["net_pix2pix"], namespace["net_disc"]
        _set_lora_b_and_round([model.unet, model.vae, model.text_encoder, disc.decoder], generator)
        _name_parameters({"unet": model.unet, "vae": model.vae, "text_encoder": model.text_encoder,
                          "net_disc": disc})
        saved["initial"] = {"unet": _pack(model.unet), "vae": _pack(model.vae),
                            "text_encoder": _pack(model.text_encoder), "net_disc": _pack(disc.decoder)}
        saved["optimizers"] = {"optimizer": _hook_optimizer(namespace["optimizer"], "optimizer"),
                               "optimizer_disc": _hook_optimizer(namespace["optimizer_disc"], "optimizer_disc")}
        _hook_terms(namespace, {"net_lpips": "lpips_per_sample", "net_clip": "clip_logits_per_image"})
        namespace["batch"] = batch

    training_utils = importlib.import_module("my_utils.training_utils")
    namespace = {"__name__": "train_pix2pix_turbo", "__builtins__": __builtins__,
                 "args": training_utils.parse_args_paired_training(PAIRED_ARGS), "dl_train": None, "dl_val": None}
    left_out = run_script(env["root"] / "src" / "train_pix2pix_turbo.py", namespace, before_loop)
    return {**_common(env, namespace["args"], left_out), **saved, **_lpips_and_clip(namespace),
            "batch": {**batch, "clip_tokens": clip.tokenize(CAPTIONS, truncate=True)},
            "losses": _losses(namespace, PIX2PIX_LOSSES), **_recorded(PIX2PIX_PHASES, saved["optimizers"])}


def record_cyclegan(env: dict, checkout: Path) -> dict[str, object]:
    REC.__init__()
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    text_vocab = importlib.import_module("record_turbo_generator").TINY_TEXT["vocab_size"]
    tokens = {"fixed_a2b_tokens": torch.randint(0, text_vocab, (77,), generator=generator),
              "fixed_b2a_tokens": torch.randint(0, text_vocab, (77,), generator=generator)}
    batch = {"pixel_values_src": torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1,
             "pixel_values_tgt": torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1}
    saved: dict[str, object] = {}

    def before_loop(namespace: dict) -> None:
        nets = {name: namespace[name] for name in ("unet", "vae_a2b", "vae_b2a", "net_disc_a", "net_disc_b")}
        _set_lora_b_and_round([nets["unet"], nets["vae_a2b"], nets["vae_b2a"], nets["net_disc_a"].decoder,
                               nets["net_disc_b"].decoder], generator)
        _name_parameters(nets)
        saved["initial"] = {"unet": _pack(nets["unet"]), "vae_a2b": _pack(nets["vae_a2b"]),
                            "vae_b2a_differs": _pack_differences(nets["vae_b2a"], nets["vae_a2b"]),
                            "net_disc_a": _pack(nets["net_disc_a"].decoder),
                            "net_disc_b": _pack(nets["net_disc_b"].decoder),
                            "fixed_a2b_emb_base": namespace["fixed_a2b_emb_base"].clone(),
                            "fixed_b2a_emb_base": namespace["fixed_b2a_emb_base"].clone()}
        saved["optimizers"] = {"optimizer_gen": _hook_optimizer(namespace["optimizer_gen"], "optimizer_gen"),
                               "optimizer_disc": _hook_optimizer(namespace["optimizer_disc"], "optimizer_disc")}
        saved["lora_groups"] = {"default_encoder": namespace["l_modules_unet_encoder"],
                                "default_decoder": namespace["l_modules_unet_decoder"],
                                "default_others": namespace["l_modules_unet_others"],
                                "vae_skip": namespace["vae_lora_target_modules"]}
        _hook_terms(namespace, {"net_lpips": "lpips_per_sample", "crit_cycle": "l1_cycle", "crit_idt": "l1_idt"})
        namespace["batch"] = batch

    training_utils = importlib.import_module("my_utils.training_utils")
    namespace = {"__name__": "train_cyclegan_turbo", "__builtins__": __builtins__, **tokens,
                 "args": _parse(training_utils.parse_args_unpaired_training, UNPAIRED_ARGS), "train_dataloader": None}
    left_out = run_script(checkout / "src" / "train_cyclegan_turbo.py", namespace, before_loop)
    return {**_common(env, namespace["args"], left_out), **saved, **_lpips_and_clip(namespace),
            "batch": {**batch, **tokens}, "losses": _losses(namespace, CYCLEGAN_LOSSES),
            **_recorded(CYCLEGAN_PHASES, saved["optimizers"])}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _pre62_difference(head: dict, before: dict, env: dict) -> dict[str, object]:
    """Before #62 only the discriminators' two steps can differ (the generator's three steps come first): check
    that everything up to them is bit-identical and keep the discriminator part (and all losses)."""
    first_disc = CYCLEGAN_PHASES.index("disc_fake")
    assert _same(head["steps"][:first_disc], before["steps"][:first_disc])
    assert _same(head["clips"][:first_disc], before["clips"][:first_disc])
    for key in ("draws", "outputs"):
        assert _same(head[key], before[key]), key
    return {"official_repo": head["official_repo"], "official_commit": env["official_commit_pre62"],
            "dtype": "float64", "same_as_until_disc_steps": "turbo_training_cyclegan.pt",
            "losses": before["losses"], "steps": before["steps"][first_disc:],
            "clips": before["clips"][first_disc:], "terms": before["terms"],
            "disc_buffers_final": before["disc_buffers_final"]}


def main() -> None:
    env = _prepare_environment()
    if "cyclegan" not in sys.argv[1:]:  # `record_turbo_training.py cyclegan` records CycleGAN-Turbo only
        torch.save(record_pix2pix(env), GOLDEN / "turbo_training_pix2pix.pt")
    head = record_cyclegan(env, env["root"])
    before = record_cyclegan(env, env["pre62"])
    for key in ("unet", "vae_a2b", "vae_b2a_differs", "net_disc_a", "net_disc_b"):
        assert torch.equal(head["initial"][key]["flat"], before["initial"][key]["flat"]), key
    torch.save(head, GOLDEN / "turbo_training_cyclegan.pt")
    torch.save(_pre62_difference(head, before, env), GOLDEN / "turbo_training_cyclegan_pre62.pt")
    for name in ("pix2pix", "cyclegan", "cyclegan_pre62"):
        print(name, (GOLDEN / f"turbo_training_{name}.pt").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
