"""The ``finetune`` command.

Each command group lives in its own module in this package and exposes
``register(subparsers)``; modules are discovered at start-up, so adding a group never
touches this file. Handlers return an exit code; whatever they raise is turned into one
error line and the exit code of its kind by :mod:`finetuning.cli._errors` (0 ok, 1 failed,
2 bad usage, 3 setup: AWS credentials, region, network or device). ``--verbose`` (before or
after the command) also prints the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import textwrap
from collections.abc import Iterator, Sequence

from finetuning import __version__
from finetuning.cli._errors import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SETUP,
    EXIT_USAGE,
    SetupError,
    UsageError,
    report,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SETUP",
    "EXIT_USAGE",
    "SetupError",
    "UsageError",
    "build_parser",
    "leaf_parsers",
    "main",
]

VERBOSE_VARIABLE = "FINETUNE_VERBOSE"


def exit_codes_text(width: int = 88) -> str:
    lines = ["exit codes:"]
    for code, text in EXIT_CODES.items():
        lines += textwrap.wrap(
            text, width, initial_indent=f"  {code:<5}", subsequent_indent=" " * 7
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune",
        description=(
            "Fine-tune large language models on the local, SageMaker and Bedrock backends: "
            "prepare and validate data, run and watch jobs, serve and evaluate models."
        ),
        epilog=exit_codes_text() + "\n\nRun `finetune GROUP --help` for more; docs/cli.md "
        "has every command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--verbose",
        dest="global_verbose",
        action="store_true",
        help=f"show the traceback of an error (also: {VERBOSE_VARIABLE}=1)",
    )
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(groups)
    # Every command takes --verbose, so it works after the command as users type it.
    for _, leaf in leaf_parsers(parser):
        if not leaf.get_default("passthrough") and "--verbose" not in leaf._option_string_actions:
            leaf.add_argument(
                "--verbose", action="store_true", help="show the traceback of an error"
            )
    return parser


def leaf_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``(("job", "create"), parser)`` for every command that runs (no further commands)."""
    children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not children:
        if path:
            yield path, parser
        return
    for action in children:
        for name, child in action.choices.items():
            yield from leaf_parsers(child, (*path, name))


def align_region_variables() -> None:
    """Let ``AWS_REGION`` win over ``AWS_DEFAULT_REGION`` for every AWS client this process
    makes, as in the AWS CLI: botocore reads only ``AWS_DEFAULT_REGION``
    (https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-envvars.html)."""
    if os.environ.get("AWS_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    align_region_variables()
    command = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if command is not None and argv[command] == "train":
        from finetuning.cli.train import run

        # train.py parses its own arguments and reports its own errors (its exit codes);
        # global options before `train` (--verbose) change nothing for it.
        return run(argv[command + 1 :])
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*argv, "--help"])
        return EXIT_USAGE
    verbose = (
        args.global_verbose
        or bool(getattr(args, "verbose", False))
        or os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0")
    )
    try:
        return int(handler(args))
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc, verbose=verbose)


if __name__ == "__main__":
    sys.exit(main())
