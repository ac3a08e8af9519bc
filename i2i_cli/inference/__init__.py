"""Translate images with a trained run: any size, batched, decode/model/encode overlapped, nothing half-written.

One module per concern, shared by every engine (the local folder driver, the Ray engine, the HTTP service):
checkpoints (which run a command means), translators (PyTorch / ONNX Runtime), tiling (any size), naming
(output names and collision rules), folder (the local engine), styles (multi-domain runs). The names below are
the package's public interface.
"""

from i2i_cli.inference.checkpoints import resolve_checkpoint
from i2i_cli.inference.folder import shard, translate_folder
from i2i_cli.inference.naming import (
    check_output_target,
    check_translation,
    find_collisions,
    input_files,
    mask_path,
    output_claims,
    output_names,
    output_path,
    refuse_collisions,
    relative_output_names,
    skip_existing_output,
)
from i2i_cli.inference.options import ProgressFn, TranslateOptions, TranslateResult
from i2i_cli.inference.styles import (
    OnnxStyles,
    StyledTranslator,
    TorchStyles,
    domain_index,
    load_styles,
    no_styles,
    reference_tags,
    style_tags,
    translate_with_styles,
)
from i2i_cli.inference.tiling import (
    TILES_PER_FORWARD,
    check_input_size,
    check_tile_options,
    pad_to_multiple,
    resize_shorter_side,
    restore_size,
    run_array,
    run_masks,
    run_tiled,
    translate_tiles,
)
from i2i_cli.inference.translators import (
    OnnxTranslator,
    TorchTranslator,
    load_translator,
    onnx_relative_direction,
    onnx_session,
)

__all__ = [
    "OnnxStyles", "OnnxTranslator", "ProgressFn", "StyledTranslator", "TILES_PER_FORWARD", "TorchStyles",
    "TorchTranslator", "TranslateOptions", "TranslateResult", "check_input_size", "check_tile_options",
    "check_output_target", "check_translation", "domain_index", "find_collisions", "input_files", "load_styles", "load_translator",
    "mask_path", "no_styles", "onnx_relative_direction", "onnx_session", "output_claims", "output_names",
    "output_path", "pad_to_multiple", "reference_tags", "refuse_collisions", "relative_output_names",
    "resize_shorter_side", "resolve_checkpoint", "restore_size", "run_array", "run_masks", "run_tiled", "shard", "skip_existing_output",
    "style_tags", "translate_folder", "translate_tiles", "translate_with_styles",
]
