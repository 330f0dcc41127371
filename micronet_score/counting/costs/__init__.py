"""Cost functions, one file per family; importing this package fills the registry."""

from micronet_score.counting.costs import (  # noqa: F401
    activation,
    attention,
    conv,
    elementwise,
    embedding,
    free,
    losses,
    matmul,
    norm,
    ordering,
    pooling,
    quantized,
    reduction,
    rnn,
    sampling,
    scatter,
    search,
)
