"""The ``finetune`` command.

Each command group lives in its own module in this package and exposes
``register(subparsers)``; modules are discovered at start-up, so adding a group never
touches this file. Handlers return an exit code: 0 ok, 1 failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from finetuning import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command was called with arguments that cannot work together (exit code 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune",
        description=(
            "Fine-tune large language models on the local, SageMaker and Bedrock backends: "
            "prepare and validate data, run and watch jobs, serve and evaluate models."
        ),
        epilog="Exit codes: 0 ok, 1 failed, 2 bad usage. Run `finetune GROUP --help` for more.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return EXIT_USAGE
    try:
        return int(handler(args))
    except UsageError as exc:
        print(f"finetune: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("finetune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
