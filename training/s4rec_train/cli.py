"""``s4rec-train``: the command group and its entry point. ``s4rec-train DATA -o model.pt`` trains (``fit``,
the default command), ``evaluate`` and ``tune`` are the others; each command lives in its own module
(:mod:`s4rec_train.cli_fit`, :mod:`~s4rec_train.cli_evaluate`, :mod:`~s4rec_train.cli_tune`), the options they
share in :mod:`s4rec_train.cli_options`.

Torch is imported only inside the commands, so that ``s4rec-train --help`` and ``--version`` work (and are
fast) without it, and ``s4rec-train`` on a machine without torch can say which extra to install instead of
failing with a traceback. The defaults the help shows come from the torch-free config dataclasses
(:mod:`s4rec_train.config`).
"""

from __future__ import annotations

import importlib.util
import sys

import click

from .cli_evaluate import evaluate
from .cli_fit import fit
from .cli_tune import tune

MISSING_TORCH = (
    "s4rec-train needs PyTorch: pip install torch (CPU: pip install torch==2.13.0), then "
    "pip install '/path/to/s4rec[train]' (this repository)"
)
MISSING_PYARROW = "s4rec-train reads data with pyarrow: pip install '/path/to/s4rec[train]' (or pip install pyarrow)"
HELP_OPTIONS = ("-h", "--help")


class DefaultCommandGroup(click.Group):
    """A group whose first argument may be data for the default command: ``s4rec-train DATA ...``.

    Its help is the default command's (usage, options with their defaults) followed by the command list, so
    that ``s4rec-train --help`` documents what ``s4rec-train DATA`` does.
    """

    default_command = "fit"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in (*HELP_OPTIONS, "--version"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[fit] DATA [OPTIONS]")
        formatter.write_usage(ctx.command_path, "evaluate CHECKPOINT DATA [OPTIONS]", prefix="       ")
        formatter.write_usage(ctx.command_path, "tune DATA [OPTIONS]", prefix="       ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        default = self.commands[self.default_command]
        default_ctx = click.Context(
            default, info_name=ctx.info_name, help_option_names=ctx.help_option_names, show_default=True
        )
        options = [param for param in default.get_params(default_ctx) if isinstance(param, click.Option)]
        records = [param.get_help_record(default_ctx) for param in options]
        records += [param.get_help_record(ctx) for param in self.get_params(ctx) if param.name == "version"]
        with formatter.section(f"Options (of {self.default_command})"):
            formatter.write_dl([record for record in records if record is not None])
        self.format_commands(ctx, formatter)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": list(HELP_OPTIONS), "show_default": True})
@click.version_option(package_name="s4rec")
def cli() -> None:
    """Train and evaluate S4Rec sequential recommenders.

    \b
    s4rec-train DATA -o model.pt          train (same as `s4rec-train fit DATA -o model.pt`)
    s4rec-train evaluate model.pt DATA    evaluate a checkpoint on DATA (its own or a newer log)
    s4rec-train tune DATA                 search hyperparameters with Optuna (validation NDCG@20)

    DATA is a benchmark-format file (`user item item ...` per line, oldest first, optionally .gz), a
    CSV/TSV interaction log (optionally .gz) or a Parquet log with user, item and timestamp columns. The
    options below are training's; see `s4rec-train evaluate --help` for evaluation's. Several processes:
    `torchrun --nproc-per-node N -m s4rec_train DATA ...`.
    """


for command in (fit, evaluate, tune):
    cli.add_command(command)


def main() -> None:
    """The ``s4rec-train`` entry point. Without torch, anything but --help and --version says which extra to
    install (one line, exit 1); torch itself is imported only by the command that runs."""
    args = sys.argv[1:]
    asks_for_help = any(arg in (*HELP_OPTIONS, "--version") for arg in args)
    if not asks_for_help and importlib.util.find_spec("torch") is None:
        click.echo(MISSING_TORCH, err=True)
        sys.exit(1)
    if not asks_for_help and importlib.util.find_spec("pyarrow") is None:
        click.echo(MISSING_PYARROW, err=True)
        sys.exit(1)
    if not asks_for_help:  # s4rec imports onnxruntime, which --help and --version do without
        from s4rec.files import exit_on_sigterm

        exit_on_sigterm()  # a SIGTERM removes the partial output; nothing appears under the output's name
        from .allocator import keep_freed_memory

        keep_freed_memory()  # large blocks reused, not mapped and unmapped every step (allocator.py: -30% time)
    cli()


if __name__ == "__main__":
    main()
