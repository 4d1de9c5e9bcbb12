"""``finetune train``: run ``train.py`` on this machine, in the foreground.

The same as ``python -m training_scripts.train`` (installed with this package), for a quick run
without the local job queue; ``finetune local submit`` and ``finetune job create --backend
local`` queue the same script. Every argument goes to train.py unchanged: ``finetune train
--help`` lists them. Exit codes are train.py's: 0 done, 1 training failed, 2 bad usage or bad
data, 143 stopped by SIGTERM after a checkpoint.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="run train.py here in the foreground (python -m training_scripts.train)",
        description=__doc__.split("\n\n", 1)[1].replace("``", "`"),
        add_help=False,
    )
    parser.add_argument(
        "arguments",
        nargs=argparse.REMAINDER,
        metavar="ARGUMENTS",
        help="train.py's arguments (--model_name_or_path, --train_file, --output_dir, ...); "
        "`finetune train --help` lists them",
    )
    # main() hands everything after `train` to train.py, --help included.
    parser.set_defaults(handler=lambda args: run(args.arguments), passthrough=True)


def run(argv: Sequence[str]) -> int:
    from training_scripts.train import main

    return int(main(list(argv)))
