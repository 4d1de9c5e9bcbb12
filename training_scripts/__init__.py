"""Training scripts that run as SageMaker training jobs and locally.

``train.py`` fine-tunes open models (full, LoRA, QLoRA) and ``inference.py`` serves them from the
SageMaker Hugging Face inference container. Importing this package, or
``training_scripts.metric_definitions``, must stay cheap: the CDK stacks and the SageMaker backend
import the metric definitions without torch installed.
"""
