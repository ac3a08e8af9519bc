"""Reduced-precision ONNX exports whose quality is measured: int8 calibrated on the run's own data."""

from i2i_cli.quantization.int8 import MIN_PSNR, Int8Report, export_int8

__all__ = ["MIN_PSNR", "Int8Report", "export_int8"]
