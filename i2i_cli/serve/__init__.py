"""Serving a translator: the HTTP service (`i2i serve`, LitServe), the web page (`i2i app`, Gradio), a Hugging
Face Space running that page, and a Triton Inference Server model repository (`i2i export --format triton`).

model.py holds what every front end shares (the model's facts, requests, batched translation through
`i2i_cli.load`); service.py reads and checks requests; server.py is the LitServe part; app.py the page;
space.py and triton.py write the two layouts."""

from __future__ import annotations

import os

from i2i_cli.serve.model import ModelFacts, TranslationRequest, TranslationResult, Translators, model_facts
from i2i_cli.serve.service import ServeOptions


def load_facts(checkpoint: str | os.PathLike[str] | None, options: ServeOptions) -> tuple[str, ModelFacts]:
    """Resolve the checkpoint (an hf:// model is fetched once, here) and read what the model is, on the CPU.
    The service's worker loads its own copy on its device."""
    from i2i_cli.api import load
    from i2i_cli.extras import require_extra

    require_extra("litserve", "serve", "i2i serve")
    translator = load(checkpoint, "cpu", direction=options.direction, precision="fp32")
    path = str(translator.path)
    facts = model_facts(translator, path)
    if facts.kind != "onnx":  # what the worker will run on its device (`auto` resolved), not the CPU copy's fp32
        from i2i_cli.engine.device import resolve_device, resolve_precision

        facts.precision = resolve_precision(options.precision, resolve_device(options.device)).name
    elif options.precision not in ("auto", "fp32"):  # bf16 runs the file in OpenVINO: its refusals come here
        facts.precision = load(path, options.device, direction=options.direction,
                               precision=options.precision).precision_ran
    return path, facts


def serve(path: str, facts: ModelFacts, options: ServeOptions) -> None:
    """Run the service until stopped; `path` and `facts` come from `load_facts`."""
    from i2i_cli.serve.server import run_server

    run_server(path, facts, options)


__all__ = ["ModelFacts", "ServeOptions", "TranslationRequest", "TranslationResult", "Translators", "load_facts",
           "model_facts", "serve"]
