"""Requests and responses of the AWS jobs that fine-tune a model, shared by every caller.

The library (``finetuning.backends``, behind ``ModelFinetuningService`` and the ``finetune``
CLI) and the platform's Lambda functions (``finetuning.orchestration``) build their
CreateModelCustomizationJob and CreateTrainingJob requests here, and read job statuses back
here, so that the same job gives the same request whichever path starts it.

Standard library only, beside (not inside) ``finetuning.orchestration``: the library and the
functions both import it, and each Lambda function's bundle ships ``finetuning/aws_jobs/``,
``finetuning/orchestration/`` and ``finetuning/platform.py`` (``BASE_LIBRARY`` in
``stacks/constructs/platform_function.py``) with Powertools and pydantic alone, so nothing here may
import another part of the library, boto3, torch, transformers or the sagemaker SDK.

- ``bedrock_customization``: CreateModelCustomizationJob requests, job statuses.
- ``sagemaker_training``: CreateTrainingJob requests for ``train.py``, job statuses.
- ``instance_types``: GPUs per instance and instance storage, per SageMaker instance type.
- ``hyperparameter_values``: how hyperparameter values are written for each service.
- ``job_status``: the backend-neutral ``JobStatus`` (``finetuning.JobStatus``).
- ``backends``: the one ``Backend`` vocabulary (``finetuning.Backend``); the platform runs
  the two AWS ones.
- ``provisioned_throughput``: CreateProvisionedModelThroughput requests and the
  ``CommitmentDuration`` terms (the library, the workflow and deploy-on-approval).
- ``on_demand``: CreateCustomModelDeployment requests and which models can be deployed on demand.
- ``tags``: the platform's tag vocabulary (``finetuning:platform``, ``finetuning:expires-at``...)
  and tag maps to and from the services' key/value lists.
- ``source_archives``: the byte-reproducible ``sourcedir.tar.gz`` a training job runs.
"""
