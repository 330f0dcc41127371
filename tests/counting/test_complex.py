"""Complex arithmetic and FFTs, priced by the spec (section 3 "Complex arithmetic"), with hand arithmetic.

A complex multiply is 4 mults + 2 adds, a complex add 2 adds, |z| 2 mults + 1 add + 1 transcendental, exp/polar
2 transcendentals + 2 mults (transcendentals booked as mults); views between complex and real are free. An
n-point FFT costs 2·n·⌈log₂n⌉ mults and 3·n·⌈log₂n⌉ adds per transformed row (rfft/irfft half). Conventions of
docs/counting.md where the spec is silent: real x complex 2 mults; complex division 8 mults + 3 adds; a scaling
normalization 1 mult per real output value; a complex value is stored as 2 values of its part's width.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import micronet_score as ms

MODES = [pytest.param(False, id="values"), pytest.param(True, id="shapes_only")]


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _count(model: nn.Module, shape: tuple[int, ...], shapes_only: bool, **kw) -> ms.Report:
    return ms.count(model, shape, shapes_only=shapes_only, strict=True, **kw)


# ------------------------------------------------------------------ rotary embeddings: complex vs rotate_half
S, H, D = 4, 2, 8  # sequence, heads, head dim: D/2 = 4 rotated pairs per head


class ComplexRope(nn.Module):
    """Meta's LLaMA reference ``apply_rotary_emb``: pairs as complex numbers times a stored ``freqs_cis``."""

    def __init__(self) -> None:
        super().__init__()
        angles = torch.outer(torch.arange(S, dtype=torch.float32), torch.arange(1, D // 2 + 1) / 10.0)
        self.register_buffer("freqs_cis", torch.polar(torch.ones_like(angles), angles))  # (S, D/2) complex64

    def forward(self, x):
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        freqs = self.freqs_cis.view(1, S, 1, D // 2)
        return torch.view_as_real(xc * freqs).flatten(3).type_as(x)


class RotateHalfRope(nn.Module):
    """The same rotation in real form (Hugging Face LLaMA): x·cos + rotate_half(x)·sin."""

    def __init__(self) -> None:
        super().__init__()
        angles = torch.outer(torch.arange(S, dtype=torch.float32), torch.arange(1, D // 2 + 1) / 10.0)
        emb = torch.cat((angles, angles), dim=-1)  # (S, D)
        self.register_buffer("cos", emb.cos())
        self.register_buffer("sin", emb.sin())

    def forward(self, x):
        x1, x2 = x[..., : D // 2], x[..., D // 2:]
        rotated = torch.cat((-x2, x1), dim=-1)
        cos, sin = self.cos.view(1, S, 1, D), self.sin.view(1, S, 1, D)
        return x * cos + rotated * sin


@pytest.mark.parametrize("shapes_only", MODES)
def test_rotary_embedding_in_complex_form_equals_the_rotate_half_form_plus_its_overhead(shapes_only):
    # Real form, per example (S·H·D = 4·2·8 = 64 outputs): x·cos 64 mults, rotate_half(x)·sin 64 mults, the sum
    # 64 adds, and rotate_half negates half the values: 32 negations (1 op each) -> 160 mults, 64 adds.
    real = _count(RotateHalfRope(), (1, S, H, D), shapes_only)
    assert (real.mults, real.adds) == (64 + 64 + 32, 64)
    # Complex form: S·H·D/2 = 32 complex products of 4 mults + 2 adds -> 128 mults, 64 adds. Its overhead
    # (view_as_complex, view_as_real, flatten, the float casts) is free; it needs no negation (the complex
    # product's subtraction does it). So: the rotation's 128 mults + 64 adds of the real form, + 0 overhead.
    cx = _count(ComplexRope(), (1, S, H, D), shapes_only)
    assert (cx.mults, cx.adds) == (128, 64)
    assert (cx.mults, cx.adds) == (real.mults - 32, real.adds)
    # Stored: freqs_cis holds S·D/2 = 16 complex64 values = 32 float32 values; cos and sin 2·S·D = 64 values.
    assert cx.params == 32 and real.params == 64


def test_complex_parts_are_32_bit_values_without_the_freebie():
    # complex64 = two float32 parts: the 128 mults multiply 32-bit parts, the buffer stores 32 values of 32 bits
    cx = ms.count(ComplexRope(), (1, S, H, D), freebie=False, strict=True)
    assert dict(cx.mults_by_bits) == {32: 128} and dict(cx.adds_by_bits) == {32: 64}
    assert dict(cx.params_by_bits) == {32: 32}


class ForwardFreqs(nn.Module):
    """Llama 4 / DeepSeek style: freqs_cis made in forward with torch.polar from a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("inv_freq", torch.arange(1, D // 2 + 1) / 10.0, persistent=False)

    def forward(self, x):
        angles = torch.outer(torch.arange(x.shape[1], dtype=torch.float32), self.inv_freq)
        freqs = torch.polar(torch.ones_like(angles), angles)  # weights and shapes only: load-time work
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * freqs[None, :, None, :]).flatten(3).type_as(x)


@pytest.mark.parametrize("shapes_only", MODES)
def test_rotary_tables_made_in_forward_cost_only_the_rotation(shapes_only):
    r = _count(ForwardFreqs(), (1, S, H, D), shapes_only)
    assert (r.mults, r.adds) == (128, 64)  # the 32 complex products, as above; polar on constants is free


# ------------------------------------------------------------------ FFTs
FFT_CASES = {
    # one example of 8 values: log2(8) = 3; fft 2·8·3 = 48 mults, 3·8·3 = 72 adds
    "fft": (lambda x: torch.fft.fft(x).real, (48, 72)),
    "fft of complex": (lambda x: torch.view_as_real(torch.fft.fft(torch.complex(x, x))), (48, 72)),
    "fft backward norm": (lambda x: torch.fft.fft(x, norm="backward").real, (48, 72)),
    # a scaling normalization: 1 mult per real output value, 8 complex outputs = 16
    "fft ortho": (lambda x: torch.fft.fft(x, norm="ortho").real, (48 + 16, 72)),
    "fft forward norm": (lambda x: torch.fft.fft(x, norm="forward").real, (48 + 16, 72)),
    "ifft": (lambda x: torch.fft.ifft(x).real, (48 + 16, 72)),  # ifft scales by 1/n by default
    # rfft: half, 24 mults and 36 adds
    "rfft": (lambda x: torch.fft.rfft(x).real, (24, 36)),
    # irfft of the 5-value half spectrum back to n = 8 outputs: half price for n = 8, + 8 real outputs scaled
    "irfft(rfft)": (lambda x: torch.fft.irfft(torch.fft.rfft(x), n=8), (24 + 24 + 8, 36 + 36)),
    # n = 5 (x trimmed to 5 values): ceil(log2 5) = 3: fft 2·5·3 = 30 mults, 45 adds; rfft 15 mults,
    # 22.5 adds rounded up to 23
    "fft n=5": (lambda x: torch.fft.fft(x, n=5).real, (30, 45)),
    "rfft n=5": (lambda x: torch.fft.rfft(x, n=5).real, (15, 23)),
}


@pytest.mark.parametrize("shapes_only", MODES)
@pytest.mark.parametrize("case", sorted(FFT_CASES))
def test_fft_costs_per_row(case, shapes_only):
    fn, expected = FFT_CASES[case]
    # a (2, 8) input: 2 examples of one 8-value row each; counts are per example
    r = _count(Fn(fn), (2, 8), shapes_only)
    assert (r.mults, r.adds) == expected


@pytest.mark.parametrize("shapes_only", MODES)
def test_fft_counts_every_row(shapes_only):
    # one example of 2 rows of 8: 2 · 48 = 96 mults, 2 · 72 = 144 adds; rfft half: 48, 72
    assert (lambda r: (r.mults, r.adds))(_count(Fn(lambda x: torch.fft.fft(x).real), (1, 2, 8), shapes_only)) \
        == (96, 144)
    assert (lambda r: (r.mults, r.adds))(_count(Fn(lambda x: torch.fft.rfft(x).real), (1, 2, 8), shapes_only)) \
        == (48, 72)


class FNetMixer(nn.Module):
    """FNet's Fourier token mixing: the real part of a 2-D FFT over hidden and sequence dimensions."""

    def forward(self, x):
        return torch.fft.fftn(x, dim=(-1, -2)).real


class FNetHF(nn.Module):
    """The same as Hugging Face FNet writes it: two 1-D FFTs."""

    def forward(self, x):
        return torch.fft.fft(torch.fft.fft(x, dim=-1), dim=-2).real


@pytest.mark.parametrize("shapes_only", MODES)
@pytest.mark.parametrize("mixer", [FNetMixer, FNetHF])
def test_fnet_fourier_mixing(mixer, shapes_only):
    # one example, sequence 4, hidden 8. Hidden dim (n = 8, log 3): 4 rows · (48 mults, 72 adds) = 192, 288.
    # Sequence dim (n = 4, log 2): 8 rows · (2·4·2 = 16 mults, 3·4·2 = 24 adds) = 128, 192. Total 320, 480.
    r = _count(mixer(), (1, 4, 8), shapes_only)
    assert (r.mults, r.adds) == (320, 480)


@pytest.mark.parametrize("shapes_only", MODES)
def test_rfftn_halves_only_the_real_dimension(shapes_only):
    # (4, 8), dims (-2, -1): the last (n = 8) at half price, 4 rows · (24, 36) = 96, 144; then the sequence dim
    # (n = 4) over the 5-column half spectrum at full price: 5 rows · (16, 24) = 80, 120. Total 176, 264.
    r = _count(Fn(lambda x: torch.fft.rfftn(x, dim=(-2, -1)).real), (1, 4, 8), shapes_only)
    assert (r.mults, r.adds) == (176, 264)


# ------------------------------------------------------------------ elementwise complex arithmetic
def _z(x: torch.Tensor) -> torch.Tensor:
    return torch.complex(x, 2 * x)  # 8 complex values from one example of 8 real ones


ARITHMETIC = {
    # each: (function of one example of 8 real values x and z = x + 2xi, (mults, adds)); every case pays the 8
    # mults of 2·x (torch.complex itself is free)
    "complex x complex": (lambda x, z: torch.view_as_real(z * z), (8 + 8 * 4, 8 * 2)),
    "complex x python complex": (lambda x, z: torch.view_as_real(z * 1j), (8 + 8 * 4, 8 * 2)),
    "real x complex": (lambda x, z: torch.view_as_real(x * z), (8 + 8 * 2, 0)),
    "complex x python float": (lambda x, z: torch.view_as_real(z * 3.0), (8 + 8 * 2, 0)),
    "conj x complex": (lambda x, z: torch.view_as_real(z.conj() * z), (8 + 8 * 4, 8 * 2)),
    "complex + complex": (lambda x, z: torch.view_as_real(z + z), (8, 8 * 2)),
    "complex - real": (lambda x, z: torch.view_as_real(z - x), (8, 8 * 2)),
    # textbook division: 6 mults + 2 divisions + 3 adds = 8 mults, 3 adds per element
    "complex / complex": (lambda x, z: torch.view_as_real(z / z), (8 + 8 * 8, 8 * 3)),
    "complex / real": (lambda x, z: torch.view_as_real(z / x), (8 + 8 * 2, 0)),
    "real / complex": (lambda x, z: torch.view_as_real(x / z), (8 + 8 * 6, 8 * 1)),
    "abs": (lambda x, z: z.abs(), (8 + 8 * 3, 8 * 1)),
    "angle": (lambda x, z: z.angle(), (8 + 8 * 1, 0)),  # atan2 of the parts: 1 transcendental
    # 1/(c + di) = (c - di)/(c² + d²): c², d², 2 divisions, 1 add
    "reciprocal": (lambda x, z: torch.view_as_real(z.reciprocal()), (8 + 8 * 4, 8 * 1)),
    "exp": (lambda x, z: torch.view_as_real(z.exp()), (8 + 8 * 4, 0)),
    "square": (lambda x, z: torch.view_as_real(torch.square(z)), (8 + 8 * 4, 8 * 2)),  # one complex multiply
    "cube": (lambda x, z: torch.view_as_real(z**3), (8 + 2 * 8 * 4, 2 * 8 * 2)),  # two complex multiplies
    "polar": (lambda x, z: torch.view_as_real(torch.polar(x, x)), (8 + 8 * 4, 0)),
    "real and imag parts": (lambda x, z: z.real + z.imag, (8, 8)),  # free parts, then a real add
    # sum over 8: 7 complex adds = 14 adds; mean: 14 adds and 1/8 times both parts: 2 mults
    "sum": (lambda x, z: torch.view_as_real(z.sum(-1)), (8, 14)),
    "mean": (lambda x, z: torch.view_as_real(z.mean(-1)), (8 + 2, 14)),
    # (1, 8) @ (8, 1): 8 complex products (32 mults, 16 adds) and 7 complex accumulations (14 adds)
    "matmul": (lambda x, z: torch.view_as_real(z.unsqueeze(-2) @ z.unsqueeze(-1)), (8 + 32, 16 + 14)),
    "to complex64": (lambda x, z: torch.view_as_real(x.to(torch.complex64) * x), (8 + 8 * 2, 0)),  # conversion free
}


@pytest.mark.parametrize("shapes_only", MODES)
@pytest.mark.parametrize("case", sorted(ARITHMETIC))
def test_complex_arithmetic(case, shapes_only):
    fn, expected = ARITHMETIC[case]
    r = _count(Fn(lambda x: fn(x, _z(x))), (2, 8), shapes_only)
    assert (r.mults, r.adds) == expected


def _complex_linear() -> nn.Linear:
    with pytest.warns(UserWarning, match="Complex modules"):  # torch's own note on complex parameters
        model = nn.Linear(8, 4).to(torch.complex64)
    with torch.no_grad():  # (.to() leaves the imaginary parts zero: make every part non-zero)
        model.weight.copy_(torch.complex(torch.rand(4, 8) + 1, torch.rand(4, 8) + 1))
        model.bias.copy_(torch.complex(torch.rand(4) + 1, torch.rand(4) + 1))
    return model


@pytest.mark.parametrize("shapes_only", MODES)
def test_a_complex_linear_layer(shapes_only):
    # 4·8 = 32 complex products: 128 mults, 64 adds; 4·7 complex accumulations and 4 complex bias adds: 64 adds
    r = ms.count(_complex_linear(), torch.randn(3, 8).to(torch.complex64), shapes_only=shapes_only, strict=True,
                 freebie=False)
    assert (r.mults, r.adds) == (128, 64 + 64)
    assert dict(r.params_by_bits) == {32: (32 + 4) * 2}  # 36 complex64 values = 72 float32 values
    if not shapes_only:
        assert r.nonzero_params == 72


def test_a_pruned_complex_linear_layer():
    model = _complex_linear()
    with torch.no_grad():
        model.weight[0] = 0  # output channel 0 pruned: 8 complex values, 16 stored parts
    r = ms.count(model, torch.randn(3, 8).to(torch.complex64), strict=True)
    # 3 channels · 8 = 24 complex products: 96 mults, 48 adds; 3·7 accumulations + 3 bias adds = 24 complex
    # adds: 48 adds
    assert (r.mults, r.adds) == (96, 48 + 48)
    assert r.params == 72 and r.nonzero_params == 72 - 16
