"""Wait on a condition with a deadline (never a bare sleep): the platform builder's own wait."""

from launcher.platform import until

__all__ = ["until"]
