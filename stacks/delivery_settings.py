"""Old home of the monitoring and pipeline settings, kept so branches that still import
``stacks.delivery_settings`` merge and run. New code imports from ``stacks.settings.monitoring``,
``stacks.settings.pipeline`` and ``stacks.settings.naming``.
"""

from stacks.settings.monitoring import (  # noqa: F401
    AlarmSettings,
    BudgetNotificationType,
    BudgetSettings,
    BudgetThreshold,
    MonitoringSettings,
)
from stacks.settings.naming import default_state_machine_name, orchestration_key_alias  # noqa: F401
from stacks.settings.pipeline import (  # noqa: F401
    PIPELINE_SETTINGS_FILE,
    CodeConnectionsSource,
    DeploymentTarget,
    PipelineSettings,
    S3Source,
    SmokeJobSettings,
    SynthSettings,
    check_job_spec_path,
    check_topology,
    cross_account,
    load_pipeline_settings,
    pipeline_settings_from_mapping,
)
