"""Code generation: the interface and the choice between Claude and the offline generator."""

from .base import CodeGenerator, FailedAttempt, GeneratedCode, GenerationRequest

__all__ = ["CodeGenerator", "FailedAttempt", "GeneratedCode", "GenerationRequest"]
