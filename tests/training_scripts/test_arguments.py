"""Command-line parsing: SageMaker's --name value form, environment defaults, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_scripts.arguments import UsageError, build_parser, parse_args

REQUIRED = ["--model_name_or_path", "m", "--train_file", "t.jsonl", "--output_dir", "out"]


def test_sagemaker_booleans_and_numbers_parse() -> None:
    args = parse_args(
        [
            *REQUIRED,
            "--packing",
            "False",
            "--merge_adapter",
            "True",
            "--bf16",
            "false",
            "--gradient_checkpointing",  # a bare flag means true
            "--learning_rate",
            "0.0003",
            "--max_steps",
            "12",
            "--lora_target_modules",
            "['q_proj', 'v_proj']",  # how SageMaker renders a Python list hyperparameter
        ],
        environ={},
    )
    assert args.data.packing is False and args.data.batching == "padded"
    assert args.model.merge_adapter is True
    assert args.run.bf16 is False
    assert args.run.gradient_checkpointing is True
    assert args.run.learning_rate == pytest.approx(3e-4)
    assert args.run.max_steps == 12
    assert args.model.lora_target_modules == "q_proj,v_proj"


def test_defaults_come_from_the_sagemaker_environment(tmp_path: Path) -> None:
    environ = {
        "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
        "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
        "SM_CHANNEL_MODEL": "/opt/ml/input/data/model",
    }
    args = parse_args([], environ=environ)
    assert args.model.model_name_or_path == "/opt/ml/input/data/model"
    assert args.data.train_file == "/opt/ml/input/data/train"
    assert args.data.validation_file == "/opt/ml/input/data/validation"
    assert args.run.output_dir == "/opt/ml/model"
    assert args.run.output_data_dir == "/opt/ml/output/data"
    # Without a checkpoint configuration, checkpoints must stay out of model.tar.gz.
    assert not args.run.checkpoint_dir.startswith("/opt/ml/model")
    # The command line wins over the environment.
    args = parse_args(["--train_file", str(tmp_path)], environ=environ)
    assert args.data.train_file == str(tmp_path)


def test_local_defaults_depend_on_the_method() -> None:
    lora = parse_args(REQUIRED, environ={})
    full = parse_args([*REQUIRED, "--method", "full"], environ={})
    assert lora.run.learning_rate == pytest.approx(2e-4)
    assert full.run.learning_rate == pytest.approx(2e-5)
    assert lora.run.checkpoint_dir == str(Path("out") / "checkpoints")
    assert lora.run.output_data_dir == "out"
    assert lora.data.batching == "auto" and lora.data.packing is None
    assert lora.data.completion_only_loss is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "dpo"], "invalid choice: 'dpo'"),
        (["--max_steps", "ten"], "invalid int value: 'ten'"),
        (["--packing", "maybe"], "expected true or false, found 'maybe'"),
        (["--learning_rate", "0"], "--learning_rate must be greater than 0, found 0.0"),
        (["--max_steps", "0"], "--max_steps must be a positive step count or -1"),
        (["--lora_dropout", "1.5"], "--lora_dropout must be in [0, 1), found 1.5"),
        (["--validation_split", "1"], "--validation_split must be in [0, 1)"),
        (["--method", "full", "--merge_adapter", "true"], "--merge_adapter applies to"),
        (["--fsdp", "true"], "--fsdp applies to --method full"),
        (["--early_stopping_patience", "2"], "--early_stopping_patience needs --eval_steps"),
        (["--model_dtype", "int8"], "--model_dtype must be one of"),
        (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
    ],
)
def test_bad_usage_is_one_clear_message(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_args([*REQUIRED, *extra], environ={})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("--model_name_or_path", "--model_name_or_path is required"),
        ("--train_file", "--train_file is required"),
        ("--output_dir", "--output_dir is required"),
    ],
)
def test_required_arguments(drop: str, message: str) -> None:
    argv = list(REQUIRED)
    index = argv.index(drop)
    del argv[index : index + 2]
    with pytest.raises(UsageError, match=message):
        parse_args(argv, environ={})


def test_help_explains_every_flag() -> None:
    text = build_parser({}).format_help()
    for flag in (
        "--model_name_or_path",
        "--train_file",
        "--validation_file",
        "--validation_split",
        "--output_dir",
        "--checkpoint_dir",
        "--method",
        "--num_train_epochs",
        "--max_steps",
        "--learning_rate",
        "--per_device_train_batch_size",
        "--gradient_accumulation_steps",
        "--max_seq_length",
        "--lora_r",
        "--lora_alpha",
        "--lora_dropout",
        "--lora_target_modules",
        "--packing",
        "--completion_only_loss",
        "--bf16",
        "--gradient_checkpointing",
        "--seed",
        "--merge_adapter",
        "--eval_steps",
        "--early_stopping_patience",
        "--data_format",
        "--fsdp",
    ):
        assert flag in text
    assert "[env: SM_CHANNEL_TRAIN]" in text
