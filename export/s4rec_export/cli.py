"""``s4rec-export model.pt -o ARTIFACT``: freeze a checkpoint into a verified ONNX artifact directory.

This module imports torch and onnx only inside the command, so that ``s4rec-export --help`` is instant and
``s4rec-export`` on a machine without them says which extra to install instead of failing with a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import click

MISSING_EXPORT = "s4rec-export needs PyTorch and onnx: pip install '/path/to/s4rec[export]' (this repository)"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Artifact directory to write.")
@click.option("--top-k", default=100, show_default=True, type=click.IntRange(1), help="Items the graph returns.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="Add an int8 dynamic-quantized variant.")
@click.option("--fp16", is_flag=True, help="Add a variant with float16 weights (float32 arithmetic).")
@click.option("--mobile", is_flag=True, help="Add model.ort (ONNX Runtime Mobile) and its reduced operator config.")
@click.option(
    "--large-format/--small-format", "large_format", default=None,
    help="Format 3 (item ids, lists and the item table in sidecar files, an encoder-only graph; --quantize int8 "
    "then scores a per-row int8 table) or format 2 (one self-describing file). Default: format 3 from 100,000 "
    "items on.",
)  # fmt: skip
@click.option("--ann", is_flag=True, help="Format 3: also build the ANN index (faiss: the [ann] extra).")
@click.option("--ann-lists", type=click.IntRange(1), help="ANN index: k-means lists.  [default: 4 sqrt(items)]")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--quiet", is_flag=True, help="Print only the summary.")
@click.version_option(package_name="s4rec")
def cli(checkpoint, output, top_k, quantize, fp16, mobile, large_format, ann, ann_lists, force, quiet):
    """Export CHECKPOINT (written by s4rec-train) to the artifact directory OUTPUT.

    The export is verified before anything is written: onnx.checker (full check), parity of ONNX Runtime
    with torch on random and edge-case histories (max abs diff <= 1e-4, same top-k order except ties),
    file sizes against the parameter count, and a read-back through the s4rec SDK. Each variant is
    compared with fp32 and its size printed. A failed export leaves no output behind.
    """
    from s4rec.errors import S4RecError
    from s4rec.files import output_error
    from s4rec_train.checkpoint import CheckpointError

    from .errors import ExportError, OutputExistsError
    from .exporter import export_checkpoint

    log = (lambda _: None) if quiet else (lambda line: click.echo(line, err=True))
    try:
        report = export_checkpoint(
            checkpoint, output, top_k=top_k, quantize=quantize, fp16=fp16, mobile=mobile, force=force, log=log,
            large_format=large_format, ann=ann, ann_lists=ann_lists,
        )  # fmt: skip
    except OutputExistsError as e:
        raise click.BadParameter(str(e), param_hint="'-o' / '--output'") from None
    except CheckpointError as e:
        raise click.BadParameter(str(e), param_hint="CHECKPOINT") from None
    except ExportError as e:
        raise click.ClickException(str(e)) from None
    except S4RecError as e:  # --ann without faiss
        raise click.ClickException(e.for_command_line()) from None
    except OSError as e:  # a full disk or a file-size limit while writing the artifact (nothing is left)
        full = output_error(e, output)
        if full is None:
            raise
        raise click.ClickException(str(full)) from None
    for line in report.lines():
        click.echo(line)


def main() -> None:
    """The ``s4rec-export`` entry point: help and ``--version`` never import torch or onnx (importing torch takes
    seconds); anything else on a machine without them says which extra to install (one line, exit 1)."""
    asks_for_help = any(arg in ("-h", "--help", "--version") for arg in sys.argv[1:])
    missing = [name for name in ("torch", "onnx") if importlib.util.find_spec(name) is None]
    if missing and not asks_for_help:
        click.echo(MISSING_EXPORT, err=True)
        sys.exit(1)
    if not asks_for_help:  # s4rec imports onnxruntime, which --help and --version do without
        from s4rec.files import exit_on_sigterm

        exit_on_sigterm()  # a SIGTERM removes the partial output; nothing appears under the output's name
    cli()


if __name__ == "__main__":
    main()
