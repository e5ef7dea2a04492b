"""Optimisers that torch does not have: the papers' own update rules."""

from quantsurvey.optim.shift_adamax import ShiftAdaMax

__all__ = ["ShiftAdaMax"]
