"""The installed package: it comes from the wheel, finds its training scripts, and every
command answers ``--help`` from a folder outside the repository."""

from __future__ import annotations

import json

from finetuning.cli import build_parser, leaf_parsers
from tests.installed_cli.conftest import REPOSITORY, User


def test_the_project_comes_from_the_wheel_not_the_checkout(user: User):
    probe = (
        "import json, finetuning, training_scripts, finetuning.cli;"
        "print(json.dumps([finetuning.__file__, training_scripts.__file__]))"
    )
    result = user.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    for path in json.loads(result.stdout):
        assert path.startswith(str(user.venv)), path
        assert not path.startswith(str(REPOSITORY)), path
    finetune = user.run("which", "finetune").stdout.strip()
    assert finetune == str(user.venv / "bin" / "finetune")


def test_training_scripts_run_from_any_folder(user: User):
    # As a module and through the CLI: the same script, its own --help (exit 0).
    module = ("python", "-m", "training_scripts.train", "--help")
    for argv in (module, ("finetune", "train", "--help")):
        result = user.run(*argv)
        assert result.returncode == 0, result.stderr
        assert "--model_name_or_path" in result.stdout
    # The training container's requirements travel with the package (SageMaker archive).
    probe = "import training_scripts, pathlib; print(pathlib.Path(training_scripts.__file__).with_name('requirements.txt').is_file())"  # noqa: E501
    assert user.run("python", "-c", probe).stdout.strip() == "True"


def test_train_reports_bad_usage_with_exit_2(user: User):
    result = user.finetune("train", "--train_file", "missing.jsonl", "--output_dir", "out")
    assert result.returncode == 2
    assert "error: --model_name_or_path is required" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help(user: User):
    commands = [" ".join(path) for path, _ in leaf_parsers(build_parser())]
    assert {"job create", "local submit", "evaluate", "data split", "train"} <= set(commands)
    # One interpreter for all of them (each `finetune` start costs a second on 2 cores);
    # the installed `finetune` itself is run for the top level and one group above.
    script = (
        "import sys, contextlib, io\n"
        "from finetuning.cli import main\n"
        "for command in sys.argv[1:]:\n"
        "    out = io.StringIO()\n"
        "    try:\n"
        "        with contextlib.redirect_stdout(out):\n"
        "            main([*command.split(), '--help'])\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        "    else:\n"
        "        code = 0 if command == 'train' else 'no exit'\n"
        "    text = out.getvalue()\n"
        "    if code != 0 or 'usage:' not in text:\n"
        "        print(f'{command}: exit {code}: {text[:200]!r}')\n"
    )
    result = user.run("python", "-c", script, *commands)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    for argv in ((), ("local",)):
        top = user.finetune(*argv, "--help")
        assert top.returncode == 0 and "usage: finetune" in top.stdout
    assert "exit codes:" in user.finetune("--help").stdout
