"""Tests of ntkeq.kernels against independent computations and identities.

Independent references used here: the paper's equations (6) and (8) and
Jacot et al.'s recursion written out entry by entry in plain Python, Monte
Carlo over Gaussian samples, numerical 2-D quadrature, and scipy's pairwise
distances. Tolerances are stated at each assertion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.spatial.distance import cdist

from ntkeq import kernels as K
from ntkeq.kernels import (
    COS_CLIP,
    Kernel,
    gram_many,
    kernel,
    kernel_names,
    laplace,
    nngp,
    ntka,
    ntkb,
    ntkj,
    relu_kernels,
    relu_moments,
)

# Relative tolerance of closed form vs closed form written independently in
# float64 (different operation order only).
RTOL = 1e-12


def unit_rows(n: int, d: int = 15, seed: int = 0) -> np.ndarray:
    """The paper's inputs: uniform[-5, 7] draws, each row scaled to unit norm."""
    X = np.random.default_rng(seed).uniform(-5.0, 7.0, size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def gauss_rows(n: int, d: int = 4, seed: int = 1) -> np.ndarray:
    """Inputs of varied norms."""
    return (
        np.random.default_rng(seed).normal(size=(n, d))
        * np.linspace(0.2, 3, n)[:, None]
    )


# ---------------------------------------------------------------- references


def ref_moments(k11: float, k22: float, k12: float, published: bool) -> tuple:
    """(E[relu relu], E[relu' relu'], angle) for one pair, from the formulas."""
    if published:
        ratio = k12 / (k11 * k22)
        angle = 0.0 if abs(ratio) > 1.0 else math.acos(ratio)
    else:
        angle = math.acos(max(-1.0, min(1.0, k12 / math.sqrt(k11 * k22))))
    e = (
        math.sqrt(k11 * k22)
        / (2 * math.pi)
        * (math.sin(angle) + math.cos(angle) * (math.pi - angle))
    )
    return e, (math.pi - angle) / (2 * math.pi), angle


def ref_ntkb(X, Y, sw, sb, c, depth, published):
    """Equations (6) (depth 1) and (8) (depth 2) of the paper, term by term."""
    d = X.shape[1]
    out = np.empty((len(X), len(Y)))
    for i, x in enumerate(X):
        for j, y in enumerate(Y):
            ip = float(np.dot(x, y))
            dx = sw[0] ** 2 / d * float(np.dot(x, x)) + sb[0] ** 2
            dy = sw[0] ** 2 / d * float(np.dot(y, y)) + sb[0] ** 2
            k0 = sw[0] ** 2 / d * ip + sb[0] ** 2
            q0, d0, _ = ref_moments(dx, dy, k0, published)
            if depth == 1:
                # (6): 1 + c1/(2π) sqrt(dx dx') (sin δ + cos δ (π−δ))
                #        + c1 σ_w1²/(2π) (π−δ) + c1 σ_w1²/(2π) <x,x'> (π−δ)
                out[i, j] = 1 + c[0] * q0 + c[0] * sw[1] ** 2 * d0 * (1 + ip)
                continue
            # (8) with K1 from (16); variances from the diagonal closed form.
            k1 = sb[1] ** 2 + c[0] * sw[1] ** 2 * q0
            k1x = sb[1] ** 2 + c[0] * sw[1] ** 2 * dx / 2
            k1y = sb[1] ** 2 + c[0] * sw[1] ** 2 * dy / 2
            q1, d1, _ = ref_moments(k1x, k1y, k1, published)
            c1, c2 = c
            out[i, j] = (
                1
                + c2 * sw[2] ** 2 * d1
                + c1 * c2 * sw[1] ** 2 * sw[2] ** 2 * (1 + ip) * d1 * d0
                + c1 * c2 * sw[2] ** 2 * d1 * q0
                + c2 * q1
            )
    return out


def ref_ntkj1(X, Y, beta):
    """Jacot et al.'s recursion at depth 1: Θ_1 = Θ_0 Σ̇_1 + E_1 + β²."""
    d = X.shape[1]
    out = np.empty((len(X), len(Y)))
    for i, x in enumerate(X):
        for j, y in enumerate(Y):
            s0 = float(np.dot(x, y)) / d + beta**2
            sx = float(np.dot(x, x)) / d + beta**2
            sy = float(np.dot(y, y)) / d + beta**2
            e, e_dot, _ = ref_moments(sx, sy, s0, False)
            out[i, j] = s0 * e_dot + e + beta**2
    return out


def ref_script_ntkj2(X, Y):
    """The published script's NTKJ2 = NTKJ1 E'(K1) + E(K1) + 1, defaults.

    K1 is the NTKB layer-1 covariance (σ = 1, c1 = 2), every angle with the
    script's normalization k12 / (k11 k22), δ = 0 where |ratio| > 1.
    """
    d = X.shape[1]
    out = np.empty((len(X), len(Y)))
    for i, x in enumerate(X):
        for j, y in enumerate(Y):
            k0 = float(np.dot(x, y)) / d + 1
            k0x = float(np.dot(x, x)) / d + 1
            k0y = float(np.dot(y, y)) / d + 1
            e0, e0_dot, _ = ref_moments(k0x, k0y, k0, True)
            ntkj1 = k0 * e0_dot + e0 + 1
            k1 = 1 + 2 * e0
            e1, e1_dot, _ = ref_moments(1 + k0x, 1 + k0y, k1, True)
            out[i, j] = ntkj1 * e1_dot + e1 + 1
    return out


# ------------------------------------------------------------ arc-cosine moments


def test_cos_clip_is_one() -> None:
    assert COS_CLIP == 1.0


def test_arc_moments_clip_and_sin() -> None:
    # Cosines just outside [-1, 1] (rounding) are clipped: angle 0 or π, sin 0.
    cos = np.array([[1 + 1e-15, -1 - 1e-15, 0.0, 0.5]])
    pi_minus_angle = np.empty_like(cos)
    K._arc_moments(cos, pi_minus_angle, np.empty_like(cos))
    # cos now holds sin δ + (π − δ) cos δ.
    expected = [math.pi, 0.0, 1.0, math.sqrt(0.75) + (math.pi - math.pi / 3) * 0.5]
    np.testing.assert_allclose(cos[0], expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(
        pi_minus_angle[0],
        [math.pi, 0.0, math.pi / 2, 2 * math.pi / 3],
        rtol=1e-14,
        atol=1e-15,
    )


def test_relu_moments_diagonal() -> None:
    # E[relu(u)²] = k/2 and E[relu'(u)²] = 1/2 (theory.md).
    v = np.array([0.3, 1.0, 7.0])
    e, e_dot = relu_moments(np.diag(v), v, v)
    np.testing.assert_allclose(np.diag(e), v / 2, rtol=1e-14)
    np.testing.assert_allclose(np.diag(e_dot), 0.5, rtol=1e-14)


CASES = [(1.0, 1.0, 0.5), (2.0, 0.5, -0.7), (1.5, 1.5, 1.49), (1.0, 4.0, 0.0)]


@pytest.mark.parametrize(("v1", "v2", "k12"), CASES)
def test_relu_moments_monte_carlo(v1: float, v2: float, k12: float) -> None:
    # 2e6 Gaussian pairs, fixed seed; agreement within 5 Monte Carlo standard
    # errors (a false failure has probability below 1e-6 per check).
    n = 2_000_000
    z = np.random.default_rng(12345).standard_normal((2, n))
    u = math.sqrt(v1) * z[0]
    w = k12 / math.sqrt(v1) * z[0] + math.sqrt(v2 - k12**2 / v1) * z[1]
    prod = np.maximum(u, 0) * np.maximum(w, 0)
    both = ((u > 0) & (w > 0)).astype(float)
    e, e_dot = relu_moments([[k12]], [v1], [v2])
    assert abs(e[0, 0] - prod.mean()) < 5 * prod.std() / math.sqrt(n)
    assert abs(e_dot[0, 0] - both.mean()) < 5 * both.std() / math.sqrt(n)


@pytest.mark.parametrize(("v1", "v2", "k12"), CASES[:3])
def test_relu_moments_quadrature(v1: float, v2: float, k12: float) -> None:
    # 2-D adaptive quadrature of the Gaussian density over the positive
    # quadrant; quadrature error is below 1e-9, tolerance 1e-7 absolute.
    det = v1 * v2 - k12**2

    def density(w: float, u: float) -> float:
        q = (v2 * u * u - 2 * k12 * u * w + v1 * w * w) / det
        return math.exp(-q / 2) / (2 * math.pi * math.sqrt(det))

    lim = 12 * math.sqrt(max(v1, v2))
    e_ref = integrate.dblquad(
        lambda w, u: u * w * density(w, u), 0, lim, 0, lim, epsabs=1e-11
    )[0]
    p_ref = integrate.dblquad(density, 0, lim, 0, lim, epsabs=1e-11)[0]
    e, e_dot = relu_moments([[k12]], [v1], [v2])
    assert abs(e[0, 0] - e_ref) < 1e-7
    assert abs(e_dot[0, 0] - p_ref) < 1e-7


def test_relu_moments_as_published() -> None:
    # Script normalization: cos δ = k12 / (k11 k22); δ = 0 where |ratio| > 1.
    cov = np.array([[0.5, 1.9, -1.9], [0.1, 0.2, 0.3]])
    v1, v2 = np.array([1.2, 0.8]), np.array([0.9, 1.5, 1.5])
    e, e_dot = relu_moments(cov, v1, v2, variant="as-published")
    for i in range(2):
        for j in range(3):
            ref_e, ref_dot, _ = ref_moments(v1[i], v2[j], cov[i, j], True)
            assert e[i, j] == pytest.approx(ref_e, rel=RTOL)
            assert e_dot[i, j] == pytest.approx(ref_dot, rel=RTOL)
    # |ratio| > 1 on both sides gives δ = 0, not π.
    assert e_dot[0, 1] == e_dot[0, 2] == 0.5


def test_relu_moments_bad_input() -> None:
    with pytest.raises(ValueError, match="var1"):
        relu_moments([[0.1]], [-1.0], [1.0])
    with pytest.raises(ValueError, match="var2 must have shape"):
        relu_moments([[0.1, 0.2]], [1.0], [1.0])
    with pytest.raises(ValueError, match="cov12"):
        relu_moments([0.1], [1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        relu_moments([[np.nan]], [1.0], [1.0])
    with pytest.raises(ValueError, match="variant"):
        relu_moments([[0.1]], [1.0], [1.0], variant="paper")


# ------------------------------------------------------------ the paper's NTKB


NONDEFAULT = {"sigma_w": (1.3, 0.7, 1.1), "sigma_b": (0.5, 0.9, 1.2), "c": (1.5, 2.5)}


@pytest.mark.parametrize("variant", ["exact", "as-published"])
@pytest.mark.parametrize("depth", [1, 2])
def test_ntkb_equals_equations_6_and_8(depth: int, variant: str) -> None:
    X, Y = gauss_rows(9, seed=3), gauss_rows(7, seed=4)
    pub = variant == "as-published"
    for sw, sb, c in [((1.0,) * 3, (1.0,) * 3, (2.0, 2.0)), tuple(NONDEFAULT.values())]:
        got = ntkb(
            X,
            Y,
            depth=depth,
            sigma_w=sw[: depth + 1],
            sigma_b=sb[: depth + 1],
            c=c[:depth],
            variant=variant,
        )
        ref = ref_ntkb(X, Y, sw, sb, c, depth, pub)
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=1e-13)
    # Unit-norm inputs with the defaults: the data-generating kernel NTKB1.
    U = unit_rows(12)
    ref = ref_ntkb(U, U, (1.0,) * 3, (1.0,) * 3, (2.0, 2.0), depth, pub)
    np.testing.assert_allclose(ntkb(U, depth=depth, variant=variant), ref, rtol=RTOL)


def test_gp_is_ntkb_covariance_from_equation_16() -> None:
    # GP1 = σ_b1² + c1 σ_w1² E[relu relu | K0] with K0 = σ_w0² <x,x'> / d + σ_b0².
    X = gauss_rows(8)
    sw, sb, c = (1.3, 0.7), (0.5, 0.9), 1.5
    k0 = sw[0] ** 2 / X.shape[1] * X @ X.T + sb[0] ** 2
    e, _ = relu_moments(k0, np.diag(k0), np.diag(k0))
    got = nngp(X, depth=1, sigma_w=sw, sigma_b=sb, c=c)
    np.testing.assert_allclose(got, sb[1] ** 2 + c * sw[1] ** 2 * e, rtol=RTOL)


# ------------------------------------------------------------ first layer, diagonal


def test_first_layer_identities() -> None:
    X = gauss_rows(10)
    G = X @ X.T
    # NTKB with c_1 = 0: the output sees only its own bias, Θ_1 = 1, Σ_1 = σ_b1².
    sigma, theta = relu_kernels(X, family="ntkb", depth=1, c=0.0, sigma_b=0.6)
    np.testing.assert_allclose(theta, 1.0, rtol=0, atol=0)
    np.testing.assert_allclose(sigma, 0.36, rtol=1e-15)
    # NTKB with σ_w,1 = 0: Θ_1 = 1 + c1 E_1 (no gradient through the first layer).
    k0 = G / X.shape[1] + 1
    e, _ = relu_moments(k0, k0.diagonal(), k0.diagonal())
    theta = ntkb(X, sigma_w=(1.0, 0.0))
    np.testing.assert_allclose(theta, 1 + 2 * e, rtol=RTOL)


def test_ntka1_closed_form_on_unit_sphere() -> None:
    # On unit inputs Σ_0 = cos δ, so NTKA1 = [cos δ (π−δ) + sin δ + (π−δ) cos δ]/π.
    U = unit_rows(20)
    cos = np.clip(U @ U.T, -1, 1)
    np.fill_diagonal(cos, 1.0)  # <x, x> = 1 exactly
    angle = np.arccos(cos)
    ref = (2 * cos * (np.pi - angle) + np.sin(angle)) / np.pi
    np.testing.assert_allclose(ntka(U), ref, rtol=1e-12, atol=1e-12)
    # c_σ = 2 keeps Σ_l(x, x) = |x|² at every layer.
    X = gauss_rows(6)
    for depth in (1, 3):
        np.testing.assert_allclose(
            np.diag(nngp(X, family="ntka", depth=depth)),
            np.sum(X * X, axis=1),
            rtol=1e-13,
        )


@pytest.mark.parametrize("family", ["ntkb", "ntkj", "ntka"])
def test_diagonal_recursion(family: str) -> None:
    # diag Σ_l obeys the closed recursion Σ_l(x,x) = b_l + a_l Σ_{l-1}(x,x) / 2,
    # and diag Θ_l: Θ_l(x,x) = r_l + s_l Σ_{l-1}(x,x)/2 + t_l Θ_{l-1}(x,x)/2.
    X = gauss_rows(7, d=3)
    sq = np.sum(X * X, axis=1)
    d = X.shape[1]
    params: dict = {
        "ntkb": {"sigma_w": (1.3, 0.7, 1.1, 0.9), "sigma_b": 0.8, "c": (1.5, 2.5, 2)},
        "ntkj": {"beta": 0.7},
        "ntka": {"c_sigma": 1.7},
    }[family]
    if family == "ntkb":
        sw2 = np.square(params["sigma_w"])
        sig, th = sw2[0] / d * sq + 0.64, sq + 1.0
        step = [
            (0.64, c * s, 1.0, c, c * s)
            for c, s in zip((1.5, 2.5, 2), sw2[1:], strict=True)
        ]
    elif family == "ntkj":
        sig = th = sq / d + 0.49
        step = [(0.49, 1.0, 0.49, 1.0, 1.0)] * 3
    else:
        sig = th = sq
        step = [(0.0, 1.7, 0.0, 1.7, 1.7)] * 3
    for depth, (b, a, r, s, t) in enumerate(step, start=1):
        sig, th = b + a * sig / 2, r + s * sig / 2 + t * th / 2
        if family == "ntkb":
            params = {
                "sigma_w": (1.3, 0.7, 1.1, 0.9)[: depth + 1],
                "sigma_b": 0.8,
                "c": (1.5, 2.5, 2)[:depth],
            }
        got_sig, got_th = relu_kernels(X, family=family, depth=depth, **params)
        np.testing.assert_allclose(np.diag(got_sig), sig, rtol=1e-13)
        np.testing.assert_allclose(np.diag(got_th), th, rtol=1e-13)


# ------------------------------------------------------------ NTKJ


def test_ntkj1_against_jacot() -> None:
    X, Y = gauss_rows(8), gauss_rows(5, seed=7)
    for beta in (1.0, 0.3):
        np.testing.assert_allclose(
            ntkj(X, Y, beta=beta), ref_ntkj1(X, Y, beta), rtol=RTOL
        )


def test_ntkj_deep_against_jacot_recursion() -> None:
    # Exact NTKJ at depth 3 against Jacot's recursion built from relu_moments.
    X = gauss_rows(6)
    s = X @ X.T / X.shape[1] + 0.25
    th = s.copy()
    for _ in range(3):
        e, e_dot = relu_moments(s, s.diagonal(), s.diagonal())
        s = e + 0.25
        th = th * e_dot + s
    np.testing.assert_allclose(ntkj(X, depth=3, beta=0.5), th, rtol=1e-12)


def test_ntkj2_as_published_is_script_formula() -> None:
    U = unit_rows(10)
    got = ntkj(U, depth=2, variant="as-published")
    np.testing.assert_allclose(got, ref_script_ntkj2(U, U), rtol=RTOL)
    X, Y = gauss_rows(6), gauss_rows(4, seed=9)
    got = ntkj(X, Y, depth=2, variant="as-published")
    np.testing.assert_allclose(got, ref_script_ntkj2(X, Y), rtol=RTOL)


# ------------------------------------------------------------ variants


def test_as_published_changes_only_what_theory_says() -> None:
    U = unit_rows(15)
    X = gauss_rows(15)

    def both(name: str, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            kernel(name)(inputs),
            kernel(name, variant="as-published")(inputs),
        )

    # NTKA: variances are exactly |x|², so unit-norm inputs are unchanged ...
    for name in ("NTKA1", "NTKA2", "NTKA3"):
        exact, pub = both(name, U)
        np.testing.assert_allclose(pub, exact, rtol=1e-12)
        exact, pub = both(name, X)  # ... and other norms are not.
        assert np.max(np.abs(pub - exact) / np.abs(exact)) > 1e-3
    # The Laplace kernel is the same in both variants.
    exact, pub = both("K1", X)
    np.testing.assert_array_equal(pub, exact)
    # Every kernel with a bias changes on unit-norm inputs, diagonal included.
    for name in ("NTKB1", "NTKB2", "GP1", "GP2", "NTKJ1", "NTKJ2"):
        exact, pub = both(name, U)
        assert np.min(np.abs(pub - exact)) > 1e-6, name
        assert np.all(np.abs(np.diag(pub) - np.diag(exact)) > 1e-6), name


def test_as_published_diagonal_of_ntkb1() -> None:
    # Defaults on unit inputs: Σ_0(x,x) = 16/15, so cos δ = 15/16 on the diagonal.
    v = 16 / 15
    angle = math.acos(15 / 16)
    e = v / (2 * math.pi) * (math.sin(angle) + (math.pi - angle) * 15 / 16)
    expected = 1 + 2 * e + 2 * (math.pi - angle) / (2 * math.pi) * 2
    got = np.diag(ntkb(unit_rows(4), variant="as-published"))
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_zero_input_without_bias_is_finite() -> None:
    # x = 0 has zero variance under NTKA: cos δ is set to 0, results are finite
    # and no RuntimeWarning is raised (the suite turns those into errors).
    X = np.array([[0.0, 0.0], [1.0, 2.0]])
    for variant in ("exact", "as-published"):
        sigma, theta = relu_kernels(X, family="ntka", depth=2, variant=variant)
        assert np.all(np.isfinite(theta))
        assert sigma[0, 0] == 0.0


# ------------------------------------------------------------ structure


ALL = [*kernel_names(), "NTKB3", "GP4", "NTKJ3", "NTKA4"]


@pytest.mark.parametrize("variant", ["exact", "as-published"])
def test_symmetry_and_psd(variant: str) -> None:
    U = unit_rows(60, seed=5)
    X = gauss_rows(40)
    grams = gram_many(ALL, U, variant=variant, block_size=16)
    grams_x = gram_many(ALL, X, variant=variant, block_size=16)
    for name in ALL:
        for G in (grams[name], grams_x[name]):
            np.testing.assert_array_equal(G, G.T)
            if variant == "exact":
                # PSD up to rounding: min eigenvalue >= -1e-12 * max eigenvalue.
                w = np.linalg.eigvalsh(G)
                assert w[0] >= -1e-12 * w[-1], (name, w[0], w[-1])


def test_x2_none_equals_x2_x1() -> None:
    X = gauss_rows(30)
    for name in ("NTKB2", "GP2", "K1", "NTKA2"):
        k = kernel(name)
        np.testing.assert_allclose(k(X), k(X, X), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("variant", ["exact", "as-published"])
def test_blocked_equals_unblocked(variant: str) -> None:
    X, Y = gauss_rows(53, seed=2), gauss_rows(41, seed=3)
    names = [*kernel_names(), "NTKB3"]
    for Y_ in (None, Y):
        full = gram_many(names, X, Y_, variant=variant, block_size=1000, n_threads=1)
        for bs, nt in ((7, 1), (16, 2), (1, 1)):
            tiled = gram_many(
                names, X, Y_, variant=variant, block_size=bs, n_threads=nt
            )
            for name in names:
                # Tiles differ from one whole block only in the order of the
                # inner-product sums: relative 1e-13.
                np.testing.assert_allclose(
                    tiled[name], full[name], rtol=1e-13, atol=1e-14
                )


def test_gram_many_equals_individual_calls() -> None:
    X, Y = unit_rows(37), unit_rows(23, seed=8)
    for variant in ("exact", "as-published"):
        names = [*kernel_names(), "NTKB3", "GP3"]
        grams = gram_many(names, X, Y, variant=variant, block_size=16)
        assert list(grams) == names
        for name in names:
            single = kernel(name, variant=variant)(X, Y, block_size=16)
            np.testing.assert_allclose(grams[name], single, rtol=1e-15, atol=0)


def test_gram_many_mixed_kernels_and_duplicates() -> None:
    X = gauss_rows(9)
    k = kernel("ntkb", depth=2, sigma_b=0.3)
    grams = gram_many([k, "GP1", "nngp1", kernel("K1", a=1.0)], X)
    assert list(grams) == ["NTKB2", "GP1", "nngp1", "K1"]
    assert grams["GP1"] is grams["nngp1"]
    np.testing.assert_allclose(
        grams["NTKB2"], ntkb(X, depth=2, sigma_b=0.3), rtol=1e-15
    )
    np.testing.assert_allclose(grams["K1"], laplace(X, a=1.0), rtol=1e-15)
    with pytest.raises(ValueError, match="share the key"):
        gram_many(["NTKB2", k], X)
    with pytest.raises(TypeError, match="kernels must hold"):
        gram_many([3], X)  # type: ignore[list-item]


def test_laplace_against_cdist() -> None:
    X, Y = gauss_rows(20), gauss_rows(11, seed=4)
    ref = 2.0 * np.exp(-cdist(X, Y) / 6.0)
    # Distances from |x|² + |y|² − 2<x,y>: absolute error ~1e-8 in the worst case.
    np.testing.assert_allclose(laplace(X, Y), ref, rtol=1e-9)
    np.testing.assert_allclose(np.diag(laplace(X)), 2.0, rtol=0, atol=0)
    np.testing.assert_allclose(
        laplace(X, Y, a=3.0, b=0.5), 3 * np.exp(-cdist(X, Y) / 0.5), rtol=1e-8
    )


def test_nngp_families() -> None:
    X = gauss_rows(8)
    for family in ("ntkb", "ntkj", "ntka"):
        for depth in (1, 3):
            sigma, _ = relu_kernels(X, family=family, depth=depth)
            np.testing.assert_array_equal(nngp(X, family=family, depth=depth), sigma)


def test_accepts_lists_and_ints() -> None:
    got = ntkb([[1, 0], [0, 1]])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ntkb(np.eye(2)), rtol=0)
    assert ntkb(np.ones((3, 2)), np.ones((0, 2))).shape == (3, 0)


# ------------------------------------------------------------ kernel() names


def test_kernel_names() -> None:
    assert kernel_names() == [
        "GP1", "GP2", "NTKA1", "NTKA2", "NTKJ1", "NTKJ2", "NTKB1", "NTKB2", "K1"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "params", "canon", "family", "depth"),
    [
        ("ntkb2", {}, "NTKB2", "ntkb", 2),
        ("NtKj7", {}, "NTKJ7", "ntkj", 7),
        ("ntka", {"depth": 3}, "NTKA3", "ntka", 3),
        ("nngp", {}, "GP1", "nngp", 1),
        ("NNGP2", {}, "GP2", "nngp", 2),
        ("gp4", {}, "GP4", "nngp", 4),
        ("k1", {}, "K1", "laplace", None),
        ("laplace", {"b": 2.0}, "K1", "laplace", None),
        ("GP2", {"family": "ntkj"}, "GP2-ntkj", "nngp", 2),
    ],
)
def test_kernel_parsing(name, params, canon, family, depth) -> None:
    k = kernel(name, **params)
    assert isinstance(k, Kernel)
    assert (k.name, k.family, k.depth, k.variant) == (canon, family, depth, "exact")
    assert canon in repr(k)


def test_kernel_params_and_values() -> None:
    k = kernel("NTKB2", variant="as-published", sigma_w=(1.0, 2.0, 3.0))
    assert k.params == {"sigma_w": (1.0, 2.0, 3.0), "sigma_b": 1.0, "c": 2.0}
    assert k.variant == "as-published"
    X = gauss_rows(5)
    np.testing.assert_array_equal(
        k(X), ntkb(X, depth=2, sigma_w=(1, 2, 3), variant="as-published")
    )
    assert kernel("ntkj").params == {"beta": 1.0}
    assert kernel("ntka2").params == {"c_sigma": 2.0}
    assert kernel("K1").params == {"a": 2.0, "b": 6.0}
    assert kernel("GP1").params == {
        "family": "ntkb",
        "sigma_w": 1.0,
        "sigma_b": 1.0,
        "c": 2.0,
    }
    assert kernel("GP2") == kernel("nngp2")
    assert kernel("GP2") != kernel("GP2", c=1.0)


def test_kernel_errors() -> None:
    with pytest.raises(ValueError, match=r"did you mean .*'NTKB2'"):
        kernel("NTKC2")
    with pytest.raises(ValueError, match=r"did you mean .*'NTKB13'"):
        kernel("NTBK13")
    with pytest.raises(ValueError, match="did you mean 'laplace'"):
        kernel("laplase")
    with pytest.raises(ValueError, match=r"allowed: \['beta'\]"):
        kernel("NTKJ1", sigma_w=1.0)
    with pytest.raises(ValueError, match="allowed"):
        kernel("K1", c=1.0)
    with pytest.raises(ValueError, match="no depth"):
        kernel("K1", depth=2)
    with pytest.raises(ValueError, match="contradicts"):
        kernel("NTKB2", depth=3)
    with pytest.raises(ValueError, match=">= 1"):
        kernel("NTKB0")
    with pytest.raises(ValueError, match="variant"):
        kernel("NTKB1", variant="published")
    with pytest.raises(ValueError, match="family"):
        kernel("GP1", family="standard")
    with pytest.raises(TypeError, match="name"):
        kernel(3)  # type: ignore[arg-type]


# ------------------------------------------------------------ bad input


def test_bad_inputs() -> None:
    X = gauss_rows(4)
    with pytest.raises(ValueError, match=r"X1 must be a 2-D array.*\(4,\)"):
        ntkb(np.ones(4))
    with pytest.raises(ValueError, match="X2 must be a 2-D"):
        ntkb(X, np.ones(4))
    with pytest.raises(ValueError, match="X1 must be finite"):
        ntkb(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="X2 must be finite"):
        laplace(X, np.full((2, 4), np.inf))
    with pytest.raises(ValueError, match="same number of columns"):
        ntka(X, np.ones((2, 3)))
    with pytest.raises(ValueError, match="d >= 1"):
        ntka(np.ones((2, 0)))
    with pytest.raises(TypeError, match="X1"):
        ntkb([["a", "b"]])


def test_bad_hyperparameters() -> None:
    X = gauss_rows(4)
    with pytest.raises(ValueError, match=r"sigma_w\[1\]"):
        ntkb(X, sigma_w=(1.0, -1.0))
    with pytest.raises(ValueError, match="sigma_b"):
        ntkb(X, sigma_b=-0.1)
    with pytest.raises(ValueError, match="sigma_w must be a number or a sequence of 3"):
        ntkb(X, depth=2, sigma_w=(1.0, 1.0))
    with pytest.raises(ValueError, match="c must be a number or a sequence of 1"):
        ntkb(X, c=(1.0, 2.0))
    with pytest.raises(ValueError, match="finite"):
        ntkb(X, c=math.inf)
    with pytest.raises(ValueError, match="depth"):
        ntkb(X, depth=0)
    with pytest.raises(TypeError, match="depth"):
        ntkb(X, depth=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="depth"):
        ntkb(X, depth=True)
    with pytest.raises(ValueError, match="beta"):
        ntkj(X, beta=-1.0)
    with pytest.raises(ValueError, match="c_sigma"):
        ntka(X, c_sigma=math.nan)
    with pytest.raises(ValueError, match="b must be a finite number > 0"):
        laplace(X, b=0.0)
    with pytest.raises(ValueError, match="variant must be one of"):
        ntkj(X, variant="exactly")
    with pytest.raises(ValueError, match="family"):
        relu_kernels(X, family="laplace", depth=1)
    with pytest.raises(ValueError, match="unknown parameter"):
        relu_kernels(X, family="ntka", depth=1, beta=1.0)
    with pytest.raises(ValueError, match="block_size"):
        ntkb(X, block_size=0)
    with pytest.raises(ValueError, match="n_threads"):
        ntkb(X, n_threads=0)
