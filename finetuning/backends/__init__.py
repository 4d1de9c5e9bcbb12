"""Backends that run a :class:`finetuning.jobs.FinetuningJobConfig`.

- ``bedrock``: Bedrock model customization jobs; ``bedrock_inference``: Provisioned Throughput
  and on-demand custom model deployments.
- ``sagemaker``: SageMaker training jobs running ``training_scripts/train.py``;
  ``sagemaker_images``: the offline training image lookup.
- ``local``: the local job service.
- ``data_split``: the automatic validation split; ``roles``: ``--create-role``.
"""
