"""Orchestration of fine-tuning jobs on AWS: the logic the platform's functions run.

The Lambda functions under ``lambda/`` are thin: each parses its event and calls one of
these modules. Nothing here imports boto3 or Powertools at import time, so the modules are
cheap to load in a function and easy to test.

- ``manifest``: the job manifest schema (``job.yaml`` / ``job.json``) and its loader.
- ``names``: ids and resource names derived from the spec (idempotency).
- ``workflow``: the state machine's state names and the task event contract.
- ``records``: the job table.
- ``submission``: starting executions (S3 manifests, the CLI, pipelines).
- ``registration``, ``validation``, ``launch``, ``waiting``, ``results``, ``evaluation``,
  ``serving``, ``completion``, ``failures``: one step of the workflow each.
- ``cleanup``: the scheduled expiry of serving resources.
- ``bedrock``, ``sagemaker``: starting, describing and stopping jobs of the two backends.
- ``aws_jobs``: the CreateModelCustomizationJob, CreateTrainingJob and
  CreateCustomModelDeployment request builders, status mappings and the on-demand
  eligibility table, shared with the library's backends (``finetuning.backends``), and
  ``JobStatus``; here so that every function's bundle ships them.
- ``notifications``, ``cost``, ``tags``, ``aws``, ``clients``, ``environment``, ``errors``.
"""
