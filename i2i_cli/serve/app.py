"""`i2i app`: a Gradio page for a trained translator.

Drop an image (or several), see input and output side by side with a slider, pick the direction or domain,
upload a style reference or draw a seed (StarGAN v2), tile large images, download the result (PNG); the model
card's facts (method, paper, dataset, eval) beside. Images are decoded by i2i's decoder and translated by the
same batched translators as `i2i serve`, so a result equals `i2i translate`'s output for that file.

Imported only for the page: gradio is the optional extra `i2i[app]`."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from i2i_cli.errors import I2IError
from i2i_cli.serve.model import ModelFacts, TranslationRequest, Translators, check_request, model_facts

TITLE = "i2i: image-to-image translation"


def facts_markdown(facts: ModelFacts) -> str:
    """The model card's facts, for the panel beside the images."""
    lines = [f"### {facts.method}", ""]
    if facts.paper:
        lines.append(f"**Paper**: {facts.paper}  ")
    if facts.code:
        lines.append(f"**Official code**: {facts.code}  ")
    if facts.dataset:
        lines.append(f"**Dataset**: {facts.dataset}  ")
    if facts.step is not None:
        lines.append(f"**Trained**: {facts.step} step{'' if facts.step == 1 else 's'}" + (f" at {facts.train_size} px" if facts.train_size else "")
                     + "  ")
    lines.append(f"**Model**: {facts.kind} ({facts.checkpoint}), {facts.precision}  ")
    if facts.domains:
        lines.append(f"**Domains**: {', '.join(facts.domains)}  ")
    lines += ["", "#### Evaluation", ""]
    if facts.eval:
        values = {k: v for k, v in facts.eval.items() if k not in ("protocol", "file") and
                  isinstance(v, (int, float, str))}
        lines += ["| metric | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in values.items()]]
        protocol = facts.eval.get("protocol") or {}
        if isinstance(protocol, dict) and protocol:
            lines += ["", "Protocol: " + "; ".join(f"{k} {v}" for k, v in protocol.items()
                                                   if isinstance(v, (int, float, str)))]
    else:
        lines.append("No evaluation recorded for this run (`i2i eval --checkpoint RUN --json RUN/eval.json`).")
    return "\n".join(lines)


class PageModel:
    """The loaded model behind the page and the files it writes for download."""

    def __init__(self, checkpoint: str | None, device: str = "auto", precision: str = "auto",
                 direction: str = "AtoB") -> None:
        self.translators = Translators(str(checkpoint) if checkpoint is not None else None, device, precision,
                                       direction)  # type: ignore[arg-type]
        default = self.translators.default
        self.facts = model_facts(default, str(default.path))
        self.out_dir = Path(tempfile.mkdtemp(prefix="i2i-app-"))

    def _request(self, path: str, direction: str, domain: str | None, style: str | None, seed: float,
                 tile: float) -> TranslationRequest:
        from i2i_cli.data.images import load_image

        request = TranslationRequest(load_image(path), direction=direction or self.facts.direction,
                                     domain=domain or None, seed=int(seed or 0),
                                     style_ref=load_image(style) if style else None, tile=int(tile or 0))
        check_request(request, self.facts)
        return request

    def translate_one(self, path: str | None, direction: str, domain: str | None, style: str | None, seed: float,
                      tile: float) -> tuple[Any, str]:
        """(input, output) for the slider and the output PNG to download."""
        from i2i_cli.data.images import save_image

        if not path:
            raise gr.Error("drop an image first")
        try:
            request = self._request(path, direction, domain, style, seed, tile)
            result = self.translators.translate([request])[0]
        except I2IError as exc:
            raise gr.Error(str(exc)) from None
        if result.image is None:
            raise gr.Error(result.error)
        target = self.out_dir / f"{Path(path).stem}_i2i.png"
        save_image(result.image, target, overwrite=True)
        return (request.image, result.image), str(target)

    def translate_many(self, paths: list[str] | None, direction: str, domain: str | None, style: str | None,
                       seed: float, tile: float) -> tuple[list[str], list[str], str]:
        """Several images: the gallery, the files to download, and the files that could not be translated."""
        from i2i_cli.data.images import save_image

        outputs, problems = [], []
        for path in paths or []:
            try:
                result = self.translators.translate([self._request(path, direction, domain, style, seed, tile)])[0]
                if result.image is None:
                    raise I2IError(result.error)
            except I2IError as exc:
                problems.append(f"- {Path(path).name}: {exc}")
                continue
            target = self.out_dir / f"{Path(path).stem}_i2i.png"
            save_image(result.image, target, overwrite=True)
            outputs.append(str(target))
        note = ("Could not translate:\n" + "\n".join(problems)) if problems else ""
        return outputs, outputs, note


def _options(facts: ModelFacts) -> dict[str, Any]:
    """The option controls this model takes (hidden where it takes none)."""
    styled = bool(facts.domains)
    return {
        "direction": gr.Radio(facts.directions, value=facts.direction, label="Direction",
                              visible=len(facts.directions) > 1),
        "domain": gr.Dropdown(facts.domains, value=facts.domains[0] if styled else None, label="Target domain",
                              visible=styled),
        "style": gr.Image(type="filepath", label="Style reference (optional; else the seed draws a style)",
                          visible=styled, sources=["upload"]),
        "seed": gr.Number(0, precision=0, label="Seed of the style", visible=styled),
        "tile": gr.Number(0, precision=0, label=f"Tile size for large images (0: off; a multiple of "
                                                f"{facts.size_multiple})"),
    }


def build_app(model: PageModel) -> gr.Blocks:
    """The page (launch it with `launch_app`)."""
    facts = model.facts
    with gr.Blocks(title=TITLE) as blocks:
        gr.Markdown(f"## {TITLE}: {facts.method}")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Tab("One image"):
                    with gr.Row():
                        source = gr.Image(type="filepath", label="Input image", sources=["upload", "clipboard"],
                                          elem_id="i2i-input")
                        slider = gr.ImageSlider(label="Input | output", format="png", elem_id="i2i-slider")
                    run = gr.Button("Translate", variant="primary", elem_id="i2i-translate")
                    download = gr.File(label="Download the output (PNG)", elem_id="i2i-download")
                with gr.Tab("Several images"):
                    sources = gr.File(file_count="multiple", file_types=["image"], label="Input images")
                    run_many = gr.Button("Translate all", variant="primary")
                    gallery = gr.Gallery(label="Outputs", columns=4)
                    downloads = gr.File(file_count="multiple", label="Download the outputs (PNG)")
                    problems = gr.Markdown()
            with gr.Column(scale=1):
                options = _options(facts)
                if facts.domains:
                    draw = gr.Button("Draw a seed")
                    draw.click(lambda: random.randrange(2**31), outputs=options["seed"])
                gr.Markdown(facts_markdown(facts), elem_id="i2i-facts")
        inputs = [options[k] for k in ("direction", "domain", "style", "seed", "tile")]
        run.click(model.translate_one, [source, *inputs], [slider, download], api_name="translate")
        run_many.click(model.translate_many, [sources, *inputs], [gallery, downloads, problems],
                       api_name="translate_many")
    return blocks


def launch_app(blocks: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
               block: bool = True) -> str:
    """Start the page; its local URL. With block=False it returns at once (tests, notebooks)."""
    _, url, _ = blocks.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                              quiet=True, footer_links=["api"])
    return url
