"""Cost functions, one file per family; importing this package fills the registry."""

from micronet_score.counting.costs import (  # noqa: F401
    activation,
    attention,
    complex_ops,
    conv,
    elementwise,
    embedding,
    fft,
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
