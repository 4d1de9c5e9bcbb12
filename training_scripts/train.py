#!/usr/bin/env python
"""Fine-tune a causal language model: full, LoRA or QLoRA.

Runs the same way as a SageMaker training job (hyperparameters arrive as ``--name value``,
defaults come from ``SM_*`` variables), under ``torchrun`` on several GPUs or nodes, and on a
laptop CPU::

    python training_scripts/train.py --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct \\
        --train_file data/train.jsonl --output_dir out --method lora --max_steps 100
    torchrun --nproc_per_node 8 training_scripts/train.py ... --method full --fsdp true

Exit codes: 0 done; 2 bad usage or bad data (one ``error: ...`` line on stderr, nothing
written); 1 training failed (traceback, then an ``error: ...`` line); 143 stopped by SIGTERM
after saving a checkpoint that the next start resumes from. docs/training.md has the whole
contract: arguments, data formats, output layout, log lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python training_scripts/train.py, torchrun, SageMaker): make the source
    # dir, which holds training_scripts/ and finetuning/data/, importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib
import signal
import traceback
from collections.abc import Sequence

from training_scripts.arguments import ScriptArguments, UsageError, parse_args
from training_scripts.console import is_main_process
from training_scripts.data import DataError, prepare_data

SIGTERM_EXIT_CODE = 143
# SageMaker reports the contents of this file as the training job's FailureReason.
# https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html
SAGEMAKER_FAILURE_FILE = Path("/opt/ml/output/failure")


def train(args: ScriptArguments) -> int:
    """Run one training job; returns the process exit code."""
    # The Trainer and train.py install SIGTERM handlers; leave the process as it was found.
    original_sigterm = signal.getsignal(signal.SIGTERM)
    try:
        return _train(args)
    finally:
        signal.signal(signal.SIGTERM, original_sigterm)


def _train(args: ScriptArguments) -> int:
    prepared_data = prepare_data(args)

    # torch and transformers load only now, so bad usage and bad data fail within a second.
    from training_scripts import checkpoints, modeling, outputs
    from training_scripts.fit import final_eval_loss, fit
    from training_scripts.tokenization import tokenize_data
    from training_scripts.trainer_setup import build_trainer

    run = args.run
    output_dir = Path(run.output_dir or "")
    checkpoint_dir = Path(run.checkpoint_dir or "")
    bf16 = run.bf16 if run.bf16 is not None else modeling.bf16_supported()
    modeling.check_environment(args.model, run.fsdp)

    tokenizer = modeling.load_tokenizer(args.model)
    data = tokenize_data(tokenizer, prepared_data, args.data)
    prepared = modeling.prepare_model(args, tokenizer, data.train, bf16=bf16)
    assembled = build_trainer(args, prepared, data, tokenizer, bf16=bf16, output_dir=output_dir)
    trainer = assembled.trainer

    identity = checkpoints.run_identity(args, prepared_data, prepared.plan.length_grouped)
    resume = checkpoints.prepare_resume(checkpoint_dir, identity, trainer.args)
    assembled.reporting.prepare(resume.step if resume else None, trainer.is_world_process_zero())
    fitted = fit(trainer, resume, checkpoint_dir, run.max_steps)
    if fitted.interrupted:
        return SIGTERM_EXIT_CODE
    eval_loss = final_eval_loss(trainer, assembled.reporting)

    outputs.save_model(trainer, tokenizer, prepared, args, output_dir)
    metrics = outputs.run_metrics(trainer, fitted, eval_loss, data, resume)
    if trainer.is_world_process_zero():
        outputs.write_json(output_dir / outputs.METRICS_FILE, metrics)
        config = outputs.training_config(
            args, prepared_data, data, prepared, trainer.args, bf16=bf16
        )
        outputs.write_json(output_dir / outputs.TRAINING_CONFIG_FILE, config)
    outputs.say_finished(trainer, metrics, output_dir)
    return 0


def report_error(message: str) -> None:
    """One ``error:`` line on stderr; on SageMaker also the job's failure reason."""
    line = " ".join(message.split())
    print(f"error: {line}", file=sys.stderr, flush=True)
    if SAGEMAKER_FAILURE_FILE.parent.is_dir() and is_main_process():
        with contextlib.suppress(OSError):  # best effort: the stderr line is the contract
            SAGEMAKER_FAILURE_FILE.write_text(line, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, train, and turn every failure into an exit code and one ``error:`` line."""
    try:
        return train(parse_args(argv))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UsageError, DataError) as exc:
        report_error(str(exc))
        return 2
    except Exception as exc:
        traceback.print_exc()
        report_error(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
