"""Compatibility: the home-made ASL interpreter that stood here is gone; simulated runs use
moto's Amazon States Language engine (``tests.orchestration.engine``). Import from ``engine``
(and ``definition``); these names remain so that tests written against the old module run on
the engine unchanged."""

from tests.orchestration.definition import TASK_FUNCTIONS, definition_document, workflow_definition
from tests.orchestration.engine import Interpreter, Outcome

__all__ = ["TASK_FUNCTIONS", "Interpreter", "Outcome", "definition_document", "workflow_definition"]
