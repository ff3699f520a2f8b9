"""The panels shown by ``%%analyze`` and ``%analyze fix`` in notebooks with a widget frontend."""

from .fix import FixPanel
from .panel import ApprovalPanel
from .slots import ResultSlots

__all__ = ["ApprovalPanel", "FixPanel", "ResultSlots"]
