"""The Python shape table gives the same counts as PyTorch's meta kernels, on every zoo model."""

import pytest
import torch

import micronet_score as ms
from micronet_score.counting import shapes


@pytest.mark.parametrize("name", sorted(ms.models.names()))
def test_shape_table_matches_meta_kernels(name, monkeypatch):
    with torch.device("meta"):
        model = ms.models.build(name)
        inputs = ms.models.example_inputs(name, model)
    fast = ms.count(model, inputs)
    monkeypatch.setattr(shapes, "ENABLED", False)
    slow = ms.count(model, inputs)
    assert fast == slow


def test_shape_table_on_functional_ops(fn_module):
    def f(x):
        y = torch.nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True)
        y = torch.cat([y, y[:, :2]], 1).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 5)
        return torch.nn.functional.avg_pool2d(y.unsqueeze(1), 2).mean(-1, keepdim=True).t() if y.dim() == 2 \
            else (y.transpose(1, 2) @ y).softmax(-1)

    with torch.device("meta"):
        x = torch.empty(2, 3, 9, 9)
    model = fn_module(f)
    fast = ms.count(model, x)
    shapes.ENABLED = False
    try:
        slow = ms.count(model, x)
    finally:
        shapes.ENABLED = True
    assert fast == slow and fast.mults > 0


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (1, 3, 2, 2), (1, 3, 16, 16)])
def test_shape_table_refuses_what_the_kernels_refuse(shape):
    # wrong channels, too small for the kernel, wrong size for the Linear: never a count of a forward that
    # cannot run, on meta as on real tensors
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
    for shapes_only in (None, True, False):
        with pytest.raises(ms.ForwardError):
            ms.count(model, shape, shapes_only=shapes_only)
    with torch.device("meta"):
        meta = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 30 * 30, 10))
    with pytest.raises(ms.ForwardError):
        ms.count(meta, shape)


def _random_call(rng):
    """A random convolution, transposed convolution or pooling call (many of them invalid) and its input."""
    kind = rng.choice(["conv", "conv_transpose", "max_pool", "avg_pool", "adaptive"])
    c, g, o = rng.choice([1, 2, 3, 4, 6]), rng.choice([1, 2, 3]), rng.choice([1, 2, 3, 4, 6])
    k, s, p, d = rng.choice([1, 2, 3, 5]), rng.choice([1, 2, 3]), rng.choice([0, 1, 2, 3]), rng.choice([1, 2])
    h = rng.choice([1, 2, 3, 4, 7])
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    F = torch.nn.functional
    weights = []
    if kind == "conv":
        weights = [torch.randn(o, max(c // g, 1), k, k, generator=gen)]
        fn = lambda x, w: F.conv2d(x, w, None, s, p, d, g)  # noqa: E731
    elif kind == "conv_transpose":
        weights = [torch.randn(c, max(o // g, 1), k, k, generator=gen)]
        op = rng.choice([0, 1])
        fn = lambda x, w: F.conv_transpose2d(x, w, None, s, p, op, g, d)  # noqa: E731
    elif kind == "max_pool":
        ceil = rng.choice([False, True])
        fn = lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode=ceil)  # noqa: E731
    elif kind == "avg_pool":
        ceil, include = rng.choice([False, True]), rng.choice([False, True])
        fn = lambda x: F.avg_pool2d(x, k, s, p, ceil, include)  # noqa: E731
    else:
        size = rng.choice([1, 2, 3, 5])
        fn = lambda x: F.adaptive_avg_pool2d(x, size)  # noqa: E731
    return kind, fn, weights, torch.randn(1, c, h, h, generator=gen)


class _Call(torch.nn.Module):
    def __init__(self, fn, weights):
        super().__init__()
        self.fn = fn
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(w) for w in weights])

    def forward(self, x):
        return self.fn(x, *self.weights)


def _never_counted_when_refused(generate, seed: int, calls: int, least: int | None = None) -> None:
    """``calls`` random calls from ``generate``: none is counted when the real kernel refuses it (also on shapes
    alone), and each that runs is counted by the default count (the retry on real values)."""
    import random

    rng = random.Random(seed)
    outcomes = {"runs": 0, "refused": 0}
    for _ in range(calls):
        kind, fn, weights, x = generate(rng)
        model = _Call(fn, weights).eval()
        try:
            with torch.no_grad():
                model(x)
            runs = True
        except (RuntimeError, IndexError):
            runs = False
        outcomes["runs" if runs else "refused"] += 1
        for shapes_only in (None, True):
            try:
                ms.count(model, x, shapes_only=shapes_only)
                counted = True
            except ms.ForwardError:
                counted = False
            if not runs:
                assert not counted, (kind, tuple(x.shape), shapes_only)
            elif shapes_only is None:
                assert counted, kind
    assert min(outcomes.values()) >= (calls // 5 if least is None else least)  # both outcomes represented


def test_random_calls_are_never_counted_when_the_real_kernel_refuses_them():
    # pooling padding beyond half the window, groups that do not divide the weight, output padding too large,
    # empty outputs: each used to be counted from the shape table although the model cannot run
    _never_counted_when_refused(_random_call, seed=0, calls=500)


def _random_tensor_call(rng):
    """A random view, reshape, concatenation, index, reduction, product or norm call (many invalid) and its
    input: dimensions out of range, repeated dims, sizes that do not match, biases that do not expand."""
    F = torch.nn.functional

    def shape(n=None):
        return [rng.choice([1, 2, 3, 4, 6]) for _ in range(n or rng.choice([1, 2, 3, 4]))]

    def dim(n, extra=1):
        return rng.randrange(-n - extra, n + extra)

    xs = shape()
    n = len(xs)
    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    weights: list[torch.Tensor] = []
    kind = rng.choice(["view", "cat", "slice", "select", "transpose", "permute", "expand", "unsqueeze", "linear",
                       "baddbmm", "matmul", "layer_norm", "batch_norm", "mean", "sum", "add", "softmax", "t"])
    if kind == "view":
        target = shape()
        if rng.random() < 0.4:
            target[rng.randrange(len(target))] = -1
        fn = lambda x: x.reshape(target)  # noqa: E731
    elif kind == "cat":
        other = list(xs)
        if rng.random() < 0.5:
            other[rng.randrange(n)] = rng.choice([1, 2, 5])
        o, d = torch.randn(other, generator=gen), dim(n)
        fn = lambda x: torch.cat([x, o], d)  # noqa: E731
    elif kind == "slice":
        d, a, b, step = dim(n), rng.randrange(-5, 6), rng.randrange(-5, 8), rng.choice([1, 2, 3, -1, 0])
        fn = lambda x: torch.ops.aten.slice.Tensor(x, d, a, b, step)  # noqa: E731
    elif kind == "select":
        d, i = dim(n), rng.randrange(-7, 7)
        fn = lambda x: x.select(d, i)  # noqa: E731
    elif kind == "transpose":
        a, b = dim(n), dim(n)
        fn = lambda x: x.transpose(a, b)  # noqa: E731
    elif kind == "permute":
        perm = list(range(n))
        rng.shuffle(perm)
        if rng.random() < 0.3:
            perm[0] = perm[-1]
        fn = lambda x: x.permute(perm)  # noqa: E731
    elif kind == "expand":
        target = [rng.choice([s, 1, 3, -1, -2]) for s in xs]
        target = rng.choice([[], [2], [-1]]) + target
        fn = lambda x: x.expand(target)  # noqa: E731
    elif kind == "unsqueeze":
        d = dim(n, 2)
        fn = lambda x: x.unsqueeze(d)  # noqa: E731
    elif kind == "linear":
        weights = [torch.randn(3, rng.choice([xs[-1], xs[-1] + 1]), generator=gen),
                   torch.randn(rng.choice([3, 2, 1]), generator=gen)]
        fn = F.linear
    elif kind == "baddbmm":
        weights = [torch.randn(rng.choice([xs[0], 2]), rng.choice([xs[-1], 5]), 3, generator=gen),
                   torch.randn(rng.choice([[3], [1, 3], [2, 1, 3], [4]]), generator=gen)]
        fn = lambda x, w, b: torch.baddbmm(b, x, w)  # noqa: E731
    elif kind == "matmul":
        weights = [torch.randn(rng.choice([xs[-1], 5]), 3, generator=gen)]
        fn = lambda x, w: x @ w  # noqa: E731
    elif kind == "layer_norm":
        normalized = xs[-rng.choice([1, 2]):] if rng.random() < 0.7 else [5]
        weights = [torch.randn(normalized, generator=gen), torch.randn(normalized, generator=gen)]
        fn = lambda x, w, b: F.layer_norm(x, normalized, w, b)  # noqa: E731
    elif kind == "batch_norm":
        c = rng.choice([xs[1] if n > 1 else 1, 5])
        weights = [torch.randn(c, generator=gen), torch.randn(c, generator=gen)]
        fn = lambda x, w, b: F.batch_norm(x, torch.zeros(c), torch.ones(c), w, b)  # noqa: E731
    elif kind in ("mean", "sum"):
        dims, keep = rng.sample(range(-n - 1, n + 1), rng.choice([1, 2])), rng.choice([True, False])
        fn = (lambda x: x.mean(dims, keepdim=keep)) if kind == "mean" else (lambda x: x.sum(dims, keepdim=keep))
    elif kind == "add":
        o = torch.randn(shape(), generator=gen)
        fn = lambda x: x + o  # noqa: E731
    elif kind == "t":
        fn = lambda x: x.t()  # noqa: E731
    else:
        d = dim(n)
        fn = lambda x: x.softmax(d)  # noqa: E731
    return kind, fn, weights, torch.randn(xs, generator=gen)


def test_random_tensor_calls_are_never_counted_when_the_real_kernel_refuses_them():
    # dimensions out of range used to wrap around (x.mean(3) of a 3-d tensor was counted), indices out of
    # range, repeated dims and a bias larger than the product were accepted by the shape table
    _never_counted_when_refused(_random_tensor_call, seed=1, calls=600)


@pytest.mark.parametrize("body,runs", [
    (lambda x: x.transpose(1, 2).view(x.shape[0], -1), False),  # torch: view size is not compatible with stride
    (lambda x: x.transpose(1, 2).relu().view(x.shape[0], -1), False),  # the elementwise result keeps the layout
    (lambda x: (x.transpose(1, 2) * 2).view(x.shape[0], -1), False),
    (lambda x: x.transpose(1, 2).contiguous().view(x.shape[0], -1), True),
    (lambda x: (x.transpose(1, 2) + 1).reshape(x.shape[0], -1), True),
    (lambda x: x[:, ::2].view(x.shape[0], -1), False),
    (lambda x: x[:, :1].expand(-1, 3, -1).reshape(x.shape[0], -1), True),
])
@pytest.mark.parametrize("shapes_only", [None, True])
def test_views_see_the_strides_real_tensors_have(fn_module, body, runs, shapes_only):
    # meta outputs used to be contiguous whatever the operator, so a view of a transposed tensor was counted
    # although the model cannot run; views now run torch's own kernels on the meta device
    x = torch.randn(2, 3, 4)
    model = torch.nn.Sequential(fn_module(body), torch.nn.LazyLinear(5)) if runs else fn_module(body)
    try:
        model(x)
        real = True
    except RuntimeError:
        real = False
    assert real is runs
    if runs:
        assert ms.count(model.eval(), x, shapes_only=shapes_only).mults > 0
    else:
        with pytest.raises(ms.ForwardError, match="view|stride"):
            ms.count(model.eval(), x, shapes_only=shapes_only)


def _random_chain(rng):
    """2 to 5 layout-changing, elementwise and view steps, parameters drawn now (so each run is the same)."""
    steps = []
    for _ in range(rng.choice([2, 3, 4, 5])):
        kind = rng.choice(["transpose", "permute", "slice", "expand", "unsqueeze", "relu", "add", "mul", "contiguous",
                           "reshape", "view", "cat", "sum", "softmax", "select", "clone", "narrow", "chunk"])
        a, b, perm_seed = rng.randrange(4), rng.randrange(4), rng.randrange(1 << 20)
        steps.append({
            "transpose": lambda x, a=a, b=b: x.transpose(a % x.dim(), b % x.dim()),
            "permute": lambda x, s=perm_seed: x.permute(*torch.randperm(x.dim(), generator=torch.Generator().manual_seed(s)).tolist()),
            "slice": lambda x: x[:, ::2] if x.dim() > 1 else x[::2],
            "expand": lambda x: x.unsqueeze(0).expand(2, *x.shape),
            "unsqueeze": lambda x, a=a: x.unsqueeze(a % (x.dim() + 1)),
            "relu": torch.relu,
            "add": lambda x: x + torch.ones(x.shape[-1:]),
            "mul": lambda x: x * x,
            "contiguous": lambda x: x.contiguous(),
            "reshape": lambda x: x.reshape(x.shape[0], -1),
            "view": lambda x: x.view(x.shape[0], -1),
            "cat": lambda x: torch.cat([x, x], x.dim() - 1),
            "sum": lambda x: x.sum(-1) if x.dim() > 1 else x,
            "softmax": lambda x: x.softmax(-1),
            "select": lambda x: x.select(0, 0) if x.dim() > 1 else x,
            "clone": lambda x: x.clone(),
            "narrow": lambda x: x.narrow(-1, 0, max(1, x.shape[-1] // 2)),
            "chunk": lambda x: x.chunk(2, -1)[0],
        }[kind])

    if rng.random() < 0.5:  # end on a view: what the layout of the steps before decides
        steps.append(lambda x: x.view(x.shape[0], -1))

    def run(x):
        for s in steps:
            x = s(x)
        return x

    gen = torch.Generator().manual_seed(rng.randrange(1 << 30))
    return "chain", run, [], torch.randn([rng.choice([2, 3, 4]) for _ in range(rng.choice([2, 3, 4]))], generator=gen)


def test_random_chains_of_views_are_never_counted_when_the_real_tensors_refuse_them():
    # a view after a transpose, a permute or a strided slice (through elementwise steps that keep the layout)
    _never_counted_when_refused(_random_chain, seed=2, calls=400, least=30)
