"""The platform's CDK stacks. `stacks.platform_stacks.FineTuningPlatformStage` assembles them."""
