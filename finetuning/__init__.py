"""The fine-tuning platform's Python library.

Submodules:
- ``finetuning.platform``: names of the SSM parameters the CDK app publishes, shared by
  the stacks (writers) and the CLI (readers).
- ``finetuning.cli``: the ``finetune`` command.
"""

__version__ = "0.1.0"
