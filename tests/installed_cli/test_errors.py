"""Every error a first-time user hit (issue 13), with its message and exit code.

In-process through ``finetuning.cli.main`` (fast); ``test_user_errors`` runs a few of them
through the installed ``finetune`` from a user's folder. Exit codes: 0 ok, 1 failed, 2 bad
usage, 3 setup (docs/cli.md).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from finetuning.cli import EXIT_CODES, build_parser, main
from finetuning.cli import _aws as cli_aws
from finetuning.jobs import FinetuningJobConfig, JobStatus
from finetuning.local.service import LocalJobService
from tests.installed_cli.conftest import RECORDS, User

UTF16 = json.dumps(RECORDS[0]).encode("utf-16")
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(128, 256))  # a PNG header


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("finetune: error: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def folder(tmp_path, monkeypatch, write_records):
    """The user's folder as the working directory, a local home inside it, no AWS setup."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FINETUNE_LOCAL_HOME", str(tmp_path / "home"))
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    write_records(tmp_path / "train.jsonl", RECORDS)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # enough for submission; nothing trains here
    return tmp_path


def test_exit_codes_are_pinned():
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 130]
    assert cli_aws.CONNECT_TIMEOUT_SECONDS == 5
    assert cli_aws.PREFLIGHT_ATTEMPTS == 2


# -- data split (item 5) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no records (the file is empty)"),
        (b"\n\n", "no records (the file is empty)"),
        (BINARY, "line 1: not UTF-8 text (a binary file, or UTF-16?)"),
        (UTF16, "line 1: not UTF-8 text"),
        (b'{"prompt": "a", "completion": "b"}\n{"prompt": \n', "line 2: not valid JSON"),
        (b'{"prompt": "a", "completion": "b"}\n[1, 2]\n', "line 2: expected a JSON object"),
        (b'{"prompt": "a", "completion": "b"}\n', "expected at least 2 records to split, found 1"),
    ],
)
def test_data_split_refuses_bad_input_and_writes_nothing(folder, capsys, content, message):
    (folder / "in.jsonl").write_bytes(content)
    code, _, err = run(capsys, "data", "split", "in.jsonl", "--output-dir", "parts")
    assert code == 2
    assert message in one_error_line(err)
    assert "in.jsonl" in err
    assert not (folder / "parts" / "train.jsonl").exists()
    assert not (folder / "parts" / "validation.jsonl").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask(folder, capsys, umask):
    old = os.umask(umask)
    try:
        assert run(capsys, "data", "split", "train.jsonl", "--output-dir", "parts")[0] == 0
    finally:
        os.umask(old)
    for name in ("train.jsonl", "validation.jsonl"):
        assert stat.S_IMODE((folder / "parts" / name).stat().st_mode) == 0o666 & ~umask


def test_one_default_validation_fraction(capsys):
    from finetuning.data.split import DEFAULT_VALIDATION_SPLIT

    assert DEFAULT_VALIDATION_SPLIT == 0.2
    assert FinetuningJobConfig.__dataclass_fields__["validation_split"].default == 0.2
    with pytest.raises(SystemExit):
        main(["data", "split", "--help"])
    assert "default: 0.2" in capsys.readouterr().out


def test_data_convert_creates_missing_output_folders_as_its_help_says(folder, capsys):
    code, _, _ = run(
        capsys, "data", "convert", "train.jsonl", "new/folder/out.jsonl", "--to", "messages"
    )
    assert code == 0
    assert (folder / "new" / "folder" / "out.jsonl").is_file()
    with pytest.raises(SystemExit):
        main(["data", "convert", "--help"])
    assert "missing parent folders are created" in " ".join(capsys.readouterr().out.split())


# -- local jobs: checks at submission (items 5, 6), paths (item 2), consistency (item 9) ------


def submit(capsys, *extra: str, data: str = "train.jsonl") -> tuple[int, str, str]:
    return run(
        capsys, "job", "create", "--backend", "local", "--base-model", "model",
        "--training-data-uri", data, "--no-wait", *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (BINARY, (), "line 1: not UTF-8 text"),
        (UTF16, ("--no-validation-split",), "line 1: not UTF-8 text"),
        (b"", ("--no-validation-split",), "no records (the file is empty)"),
        (b"\n", (), "no records (the file is empty)"),
    ],
)
def test_bad_training_data_is_refused_at_submission(folder, capsys, content, extra, message):
    (folder / "bad.jsonl").write_bytes(content)
    code, _, err = submit(capsys, *extra, data="bad.jsonl")
    assert code == 2
    line = one_error_line(err)
    assert "training_data_uri" in line and message in line and "bad.jsonl" in line
    assert sorted(p.name for p in folder.iterdir() if "split" in p.name) == []
    assert not (folder / "home" / "splits").exists() or not any(
        (folder / "home" / "splits").iterdir()
    )
    assert LocalJobService(folder / "home").list().jobs == []


def test_epoch_count_zero_is_refused_at_submission(folder, capsys):
    code, _, err = submit(capsys, "--epoch-count", "0")
    assert code == 2
    assert "--num_train_epochs must be greater than 0, found 0" in one_error_line(err)
    assert LocalJobService(folder / "home").list().jobs == []


def test_qlora_without_cuda_is_refused_at_submission(folder, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: QLoRA can run here")
    code, _, err = submit(capsys, "--method", "qlora")
    assert code == 2
    line = one_error_line(err)
    assert "method: expected full or lora on a machine without an NVIDIA GPU" in line
    assert "--method lora" in line


def test_relative_paths_are_stored_absolute(folder, capsys):
    code, out, _ = submit(capsys, "--output-uri", "outputs", "--json", "--job-name", "rel")
    assert code == 0
    job = json.loads(out[out.index("{") :])
    assert job["output_uri"] == str(folder / "outputs" / job["job_arn"])
    assert Path(job["training_data_uri"]).is_absolute()
    assert job["base_model"] == str(folder / "model")
    # The automatic split went to the service home, not beside the user's data.
    assert Path(job["training_data_uri"]).parent == folder / "home" / "splits"
    assert sorted(p.name for p in folder.glob("train*")) == ["train.jsonl"]


def test_the_same_spec_twice_is_one_job_and_a_taken_name_is_refused(folder, capsys):
    first = submit(capsys, "--job-name", "twice", "--json")
    second = submit(capsys, "--job-name", "twice", "--json")
    assert first[0] == second[0] == 0
    ids = [json.loads(out[out.index("{") :])["job_arn"] for _, out, _ in (first, second)]
    assert ids[0] == ids[1]
    code, _, err = submit(capsys, "--job-name", "twice", "--epoch-count", "2")
    assert code == 2
    line = one_error_line(err)
    assert "job_name" in line and ids[0] in line and "different spec" in line
    assert len(LocalJobService(folder / "home").list().jobs) == 1


def test_jobs_are_found_by_name_the_same_way_in_both_groups(folder, capsys):
    assert submit(capsys, "--job-name", "named")[0] == 0
    capsys.readouterr()
    for argv in (
        ["job", "status", "--job-arn", "named", "--backend", "local"],
        ["job", "status", "named", "--backend", "local"],
        ["local", "status", "named"],
        ["local", "status", "--job-id", "named"],
    ):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert "job:      named" in out
    code, _, err = run(capsys, "local", "status", "nothing-by-this-name")
    assert code == 1 and "no local job 'nothing-by-this-name'" in one_error_line(err)
    code, _, err = run(capsys, "local", "status")
    assert code == 2 and "which job?" in one_error_line(err)


def test_job_list_and_local_list_print_the_same_columns(folder, capsys):
    assert submit(capsys, "--job-name", "listed")[0] == 0
    capsys.readouterr()
    rows = [
        run(capsys, *argv)[1] for argv in (["job", "list", "--backend", "local"], ["local", "list"])
    ]
    assert rows[0] == rows[1]
    _date, _time, status, name, job_id = rows[0].split()
    assert (status, name) == ("queued", "listed") and job_id.startswith("local-")


def test_stop_and_cancel_agree_on_exit_codes(folder, capsys):
    assert submit(capsys, "--job-name", "stopped")[0] == 0
    capsys.readouterr()
    assert run(capsys, "local", "cancel", "stopped")[0] == 0
    for argv in (["local", "cancel", "stopped"], ["job", "stop", "stopped", "--backend", "local"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "cancelled" in out  # already cancelled: the asked-for state holds
    assert submit(capsys, "--job-name", "done")[0] == 0
    capsys.readouterr()
    service = LocalJobService(folder / "home")
    service.store.finish_job(service.get("done").job_arn, JobStatus.COMPLETED, None)
    for argv in (["local", "cancel", "done"], ["job", "stop", "done", "--backend", "local"]):
        code, out, _ = run(capsys, *argv)
        assert code == 1 and "already completed" in out


@pytest.mark.parametrize("content", [b"", UTF16, BINARY], ids=["empty", "utf-16", "binary"])
def test_data_estimate_refuses_a_file_with_nothing_to_count(folder, capsys, content):
    (folder / "data.jsonl").write_bytes(content)
    code, out, err = run(
        capsys, "data", "estimate", "data.jsonl", "--model", "amazon.nova-lite-v1:0:300k",
        "--epochs", "1",
    )  # fmt: skip
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "data.jsonl: no valid record to count" in line and "finetune data validate" in line


# -- evaluate (items 3, 4) ----------------------------------------------------------------------


@pytest.mark.parametrize("content", [UTF16, BINARY])
def test_evaluate_refuses_a_test_set_that_is_not_utf8(folder, capsys, content):
    (folder / "test.jsonl").write_bytes(content)
    code, _, err = run(
        capsys, "evaluate", "--local-model", "model", "--test-set", "test.jsonl", "--no-report"
    )
    assert code == 2
    assert "test.jsonl: line 1: not UTF-8 text" in one_error_line(err)


def test_evaluate_cuda_without_cuda_stops_before_any_model_loads(folder, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(
        capsys, "evaluate", "--local-model", "model", "--test-set", "train.jsonl",
        "--device", "cuda",
    )  # fmt: skip
    assert code == 3
    assert "--device cuda: CUDA is not available" in one_error_line(err)
    assert not (folder / "evaluation_results.json.partial.jsonl").exists()


def evaluate_bedrock(capsys, *extra: str) -> tuple[int, str, str]:
    return run(
        capsys, "evaluate", "--model-id", "us.amazon.nova-lite-v1:0", "--test-set",
        "train.jsonl", "--no-report", *extra,
    )  # fmt: skip


def test_evaluate_without_credentials_stops_at_the_first_call(folder, capsys, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # AWS_REGION alone is enough for the region
    code, _, err = evaluate_bedrock(capsys)
    assert code == 3
    line = one_error_line(err)
    assert "no AWS credentials found" in line and "aws configure" in line and "AWS_PROFILE" in line
    assert not list(folder.glob("evaluation_results*"))  # no sample was sent, nothing written


def test_no_region_anywhere_is_a_setup_error(folder, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    code, _, err = evaluate_bedrock(capsys)
    assert code == 3
    assert "no AWS region configured" in one_error_line(err) and "AWS_REGION" in err


def test_region_resolves_like_the_aws_cli(folder, monkeypatch):
    (folder / "no-aws-config").write_text(
        "[default]\nregion = ap-south-1\n[profile other]\nregion = sa-east-1\n"
    )
    assert cli_aws.resolve_region() == "ap-south-1"
    monkeypatch.setenv("AWS_PROFILE", "other")
    assert cli_aws.resolve_region() == "sa-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert cli_aws.resolve_region() == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert cli_aws.resolve_region() == "eu-west-3"
    assert cli_aws.resolve_region("us-west-2") == "us-west-2"
    session = cli_aws.session(None, preflight=False)
    assert session.region_name == "eu-west-3"
    client = session.client("sts")
    assert client.meta.config.connect_timeout == cli_aws.CONNECT_TIMEOUT_SECONDS


def test_a_missing_profile_is_a_setup_error(folder, capsys, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "nope")
    code, _, err = evaluate_bedrock(capsys)
    assert code == 3
    assert "nope" in one_error_line(err)


def unrecognized(*_args, **_kwargs):
    raise ClientError(
        {"Error": {"Code": "UnrecognizedClientException", "Message": "The security token "
                   "included in the request is invalid."}},
        "GetParametersByPath",
    )  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--model-id", "us.amazon.nova-lite-v1:0", "--test-set", "train.jsonl"],
        ["job", "status", "--job-arn", "some-bedrock-job"],
        ["job", "list", "--via-platform"],
        ["job", "create", "--training-data-uri", "s3://my-bucket/train.jsonl",
         "--base-model", "amazon.nova-lite-v1:0:300k", "--no-validation-split"],
    ],
)  # fmt: skip
def test_rejected_credentials_exit_3_in_every_command(folder, capsys, monkeypatch, argv):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setattr(cli_aws, "check", unrecognized)
    code, _, err = run(capsys, *argv)
    assert code == 3
    line = one_error_line(err)
    assert "AWS rejected the credentials" in line and "UnrecognizedClientException" in line
    assert "aws configure" in line and "no deployed platform" not in line


def test_discovery_does_not_call_rejected_credentials_no_platform():
    from finetuning.discovery import discover_platform

    class Paginator:
        paginate = staticmethod(unrecognized)

    class Ssm:
        def get_paginator(self, _name):
            return Paginator()

    with pytest.raises(ClientError):
        discover_platform(Ssm())


def test_unreachable_aws_fails_fast_with_exit_3(folder, capsys, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: refused
    code, _, err = evaluate_bedrock(capsys)
    assert code == 3
    assert "cannot reach AWS" in one_error_line(err)


def test_the_sts_call_can_be_skipped_where_sts_is_unreachable(folder, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv(cli_aws.NO_STS_CHECK_VARIABLE, "1")
    assert cli_aws.check(cli_aws.session(None, preflight=False)) == ""
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(cli_aws.SetupError, match="no AWS region configured"):
        cli_aws.check(cli_aws.session(None, preflight=False))


def test_verbose_shows_the_traceback_and_only_then(folder, capsys, monkeypatch):
    def broken(_args):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr("finetuning.cli.local.make_service", broken)
    code, _, err = run(capsys, "local", "models")
    assert code == 1
    line = one_error_line(err)
    assert "internal error: RuntimeError: something unexpected" in line and "--verbose" in line
    for argv in (["--verbose", "local", "models"], ["local", "models", "--verbose"]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "Traceback (most recent call last)" in err
        assert err.rstrip().splitlines()[-1].startswith("finetune: error: internal error")


# -- the installed CLI from a user's folder -----------------------------------------------------


def test_user_errors(user: User, write_records):
    (user.folder / "blob.jsonl").write_bytes(BINARY)
    split = user.finetune("data", "split", "blob.jsonl")
    assert split.returncode == 2
    assert "blob.jsonl: line 1: not UTF-8 text" in split.stderr and "Traceback" not in split.stderr
    write_records(user.folder / "test.jsonl", RECORDS[:2])
    evaluate = user.finetune(
        "evaluate", "--model-id", "us.amazon.nova-lite-v1:0", "--test-set", "test.jsonl"
    )
    assert evaluate.returncode == 3
    assert "finetune: error: no AWS region configured" in evaluate.stderr
    assert "Traceback" not in evaluate.stderr
    # Hyperparameters are checked against train.py's own arguments, from the installed
    # package (this was ModuleNotFoundError: training_scripts outside the repository).
    sagemaker = user.finetune(
        "job", "create", "--backend", "sagemaker", "--base-model", "HuggingFaceTB/SmolLM2-135M",
        "--training-data-uri", "s3://my-bucket/train.jsonl", "--hyperparameter", "nonsense=1",
        "--role-arn", "arn:aws:iam::123456789012:role/training", "--no-validation-split",
        "--output-uri", "s3://my-bucket/out/",
    )  # fmt: skip
    assert sagemaker.returncode == 2
    assert "hyperparameters.nonsense: expected one of the train.py hyperparameters" in (
        sagemaker.stderr
    )


def test_via_platform_uses_aws_region(folder, monkeypatch):
    """`--via-platform` used to build its clients without a region ("You must specify a
    region" with AWS_REGION set); it now uses the region the CLI resolved."""
    from finetuning.cli.job import platform_client

    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    monkeypatch.setattr(cli_aws, "check", lambda _session: "arn:aws:iam::123456789012:user/me")
    args = build_parser().parse_args(["job", "list", "--via-platform"])
    ssm = platform_client(args)._clients("ssm")
    assert ssm.meta.region_name == "eu-north-1"
    assert ssm.meta.config.connect_timeout == cli_aws.CONNECT_TIMEOUT_SECONDS


def test_a_job_that_wrote_no_model_fails_instead_of_registering_an_empty_folder(folder):
    import time

    script = folder / "writes_nothing.py"
    script.write_text("import sys\nsys.exit(0)\n")
    service = LocalJobService(folder / "home", train_script=script, poll_interval=0.05)
    job = service.submit(
        job_name="empty", base_model="model", train_file="train.jsonl", output_dir="outputs"
    )
    with service:
        deadline = time.monotonic() + 60
        while not service.get(job.job_arn).status.is_terminal and time.monotonic() < deadline:
            time.sleep(0.1)
    done = service.get(job.job_arn)
    assert done.status is JobStatus.FAILED
    assert done.failure_reason.startswith("registration: train.py exited 0 but ")
    assert str(folder / "outputs" / job.job_arn) in done.failure_reason
    assert service.registry.list() == []


def test_aws_region_wins_for_every_client_the_cli_makes(folder, capsys, monkeypatch):
    """botocore reads only AWS_DEFAULT_REGION; the data commands' own S3 clients too must
    follow AWS_REGION, which the AWS CLI lets win."""
    import boto3

    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert run(capsys, "local", "list")[0] == 0
    assert boto3.Session().region_name == "eu-west-3"


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}}, "CreateTrainingJob")


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (_client_error("UnrecognizedClientException"), 3, "AWS rejected the credentials"),
        (_client_error("ExpiredTokenException"), 3, "aws configure"),
        (_client_error("AccessDeniedException"), 1, "lacks a permission"),
        (_client_error("ValidationException"), 1, "CreateTrainingJob failed: ValidationException"),
        (
            ClientError({"Error": {"Code": "ConflictException"}}, "DeleteCustomModelDeployment"),
            1,
            "cannot delete the deployment in its present state (still being created?)",
        ),
        ("NoRegionError", 3, "no AWS region configured"),
        ("NoCredentialsError", 3, "no AWS credentials found"),
        ("EndpointConnectionError", 3, "cannot reach AWS"),
        ("ReadTimeoutError", 3, "cannot reach AWS"),
        ("ResponseParserError", 3, "the answer did not come from AWS"),
        ("InvalidJobConfigError", 2, "epochCount: expected"),
        ("JobNotFoundError", 1, "no local job 'x'"),
        ("WaitTimeoutError", 1, "timed out"),
        (FileNotFoundError(2, "No such file or directory", "in.jsonl"), 2, "in.jsonl: No such"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (RuntimeError("boom"), 1, "internal error: RuntimeError: boom"),
    ],
)
def test_one_exit_code_per_kind_of_failure(exc, code, text):
    from botocore import exceptions as aws
    from botocore.parsers import ResponseParserError

    from finetuning.cli._errors import classify
    from finetuning.errors import InvalidJobConfigError, JobNotFoundError, WaitTimeoutError

    made = {
        "NoRegionError": lambda: aws.NoRegionError(),
        "NoCredentialsError": lambda: aws.NoCredentialsError(),
        "EndpointConnectionError": lambda: aws.EndpointConnectionError(endpoint_url="https://x"),
        "ReadTimeoutError": lambda: aws.ReadTimeoutError(endpoint_url="https://x"),
        "ResponseParserError": lambda: ResponseParserError("invalid XML received"),
        "InvalidJobConfigError": lambda: InvalidJobConfigError("epochCount", "1-5", 0),
        "JobNotFoundError": lambda: JobNotFoundError("x", "local"),
        "WaitTimeoutError": lambda: WaitTimeoutError("job x", 10, None),
    }
    exc = made[exc]() if isinstance(exc, str) else exc
    assert classify(exc)[0] == code
    assert text in classify(exc)[1]


def test_one_bad_json_line_reads_the_same_everywhere(folder, capsys):
    """`data split`, `job create --backend local` and `evaluate --test-set` name the same
    file, line and problem in the same words."""
    (folder / "bad.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a",}\n')
    expected = "bad.jsonl: line 2: not valid JSON (Expecting property name enclosed in double quotes at column 16)"  # noqa: E501
    lines = []
    for argv in (
        ["data", "split", "bad.jsonl", "--output-dir", "parts"],
        ["job", "create", "--backend", "local", "--base-model", "model",
         "--training-data-uri", "bad.jsonl", "--no-validation-split"],
        ["evaluate", "--local-model", "model", "--test-set", "bad.jsonl"],
    ):  # fmt: skip
        code, _, err = run(capsys, *argv)
        assert code == 2
        lines.append(one_error_line(err))
    for line in lines:
        assert expected in line, line


def test_global_options_before_train_reach_train_py(capsys):
    assert main(["--verbose", "train", "--help"]) == 0  # train.py's own --help, exit 0
    assert "--model_name_or_path" in capsys.readouterr().out
