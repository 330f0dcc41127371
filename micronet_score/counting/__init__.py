"""The counting engine: a dispatch-level tracer, a registry of cost functions, and ``count``."""

from micronet_score.counting.engine import count
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
