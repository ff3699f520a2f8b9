"""The approval panel shown by ``%%analyze`` in notebooks with a widget frontend."""

from .panel import ApprovalPanel

__all__ = ["ApprovalPanel"]
