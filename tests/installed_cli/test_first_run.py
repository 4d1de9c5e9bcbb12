"""README's "First fine-tune in five minutes", run as written: from a folder outside the
repository, with the wheel's ``finetune`` and relative paths; a local fine-tune of a tiny
model end to end, then ``finetune evaluate --local-model`` on what ``local models`` lists."""

from __future__ import annotations

import json
import re

from tests.installed_cli.conftest import REPOSITORY, User

BEGIN, END = "<!-- first-finetune:begin -->", "<!-- first-finetune:end -->"


def walkthrough() -> str:
    """The commands of README's walkthrough (the one bash block between the markers)."""
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return block


def test_readme_walkthrough_runs_as_written(user: User, user_tiny_model):
    user.env["BASE_MODEL"] = str(user_tiny_model)
    # A group-writable umask: outputs must follow it (mkstemp alone would give 0600).
    result = user.bash("umask 002\n" + walkthrough())
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    print(result.stdout, result.stderr)  # shown with -s: what the user sees

    folder = user.folder / "first-finetune"
    # No split files beside the user's data: the automatic split lives in the service home.
    assert [p.name for p in folder.glob("train*")] == ["train.jsonl"]
    # The weights are where --output-uri (relative) said, resolved against the caller's cwd.
    (output,) = (folder / "outputs").iterdir()
    assert (output / "adapter_config.json").is_file()
    assert "finished:" in result.stdout and "status:   completed" in result.stdout
    # `local models` lists the model at that absolute path ...
    assert re.search(rf"^first-finetune\s+lora\s+{re.escape(str(output))}\s", result.stdout, re.M)
    # ... and evaluate ran on it (4 samples) and wrote its results beside the user's data.
    document = json.loads((folder / "evaluation_results.json").read_text())
    assert document["inputs"]["samples"] == 4
    assert (folder / "evaluation_results.json").stat().st_mode & 0o777 == 0o664

    # The same spec again is the same job (idempotent), not a second one with the same name.
    again = user.bash(
        'cd first-finetune && finetune job create --backend local --base-model "$BASE_MODEL" '
        "--training-data-uri train.jsonl --output-uri outputs --job-name first-finetune "
        "--model-name first-finetune --epoch-count 1 --hyperparameter max_steps=4 --no-wait "
        "&& finetune local list --json"
    )
    assert again.returncode == 0, again.stderr
    listed = json.loads(again.stdout[again.stdout.index('{\n  "jobs"') :])
    assert [job["job_name"] for job in listed["jobs"]] == ["first-finetune"]
