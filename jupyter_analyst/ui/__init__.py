"""The approval panel shown by ``%%analyze`` in notebooks with a widget frontend."""

from .panel import ApprovalPanel
from .slots import ResultSlots

__all__ = ["ApprovalPanel", "ResultSlots"]
