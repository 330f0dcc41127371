"""The counting engine: a dispatch-level tracer, a registry of cost functions, and ``count``."""

from micronet_score.counting.registry import (
    ChannelStats,
    Cost,
    OpCall,
    free_ops,
    register,
    register_free,
    registered_ops,
)

__all__ = ["ChannelStats", "Cost", "OpCall", "count", "free_ops", "register", "register_free", "registered_ops"]


def __getattr__(name: str) -> object:
    """``micronet_score.counting.count``, kept importable: it lives in :mod:`micronet_score.api`."""
    if name == "count":
        from micronet_score.api import count

        return count
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
