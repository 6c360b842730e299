"""Confined execution of model-written code (MBPP, HumanEval tests)."""

from routing_gym.execution.sandbox import (
    STATUSES,
    ExecutionResult,
    Sandbox,
    SandboxLimits,
    TestProgram,
    default_sandbox,
    namespace_command,
)

__all__ = [
    "STATUSES", "ExecutionResult", "Sandbox", "SandboxLimits", "TestProgram", "default_sandbox", "namespace_command",
]
