"""The compiler: a workflow definition tree lowered to an immutable state machine.

Internal: no stability promise beyond what ``durable_celery`` re-exports.
"""

from durable_celery.compiler.ir import END, State, StateMachine
from durable_celery.compiler.lower import compile_workflow

__all__ = ["END", "State", "StateMachine", "compile_workflow"]
