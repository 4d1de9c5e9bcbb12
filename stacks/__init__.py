"""The platform's CDK stacks. `stacks.stage.FineTuningPlatformStage` assembles them."""
