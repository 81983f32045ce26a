"""Output distributions without TensorFlow: exact mixture probabilities, the R->G->B draw, softmax's draw unchanged."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import run_without_tensorflow

from serve import distributions
from serve.distributions import DistributionError
from serve.distributions import logistic_mixture as lm
from serve.distributions.arrays import NumpyOps
from serve.sampling import sample_naive, uniforms

LEVELS = [2, 16, 256]


def mixture(channels, levels, mixtures=3):
    return distributions.build("logistic_mixture", channels=channels, levels=levels, mixtures=min(mixtures, levels))


def random_head(dist, n, seed, scale=1.0):
    """Heads of n pixels: means spread over and beyond [-1, 1], log-scales across the clip range."""
    return np.random.default_rng(seed).normal(0.0, scale, (n,) + dist.head_shape)


def extreme_head(dist, n, seed):
    """Heads with parameters far out: huge logits and means, log-scales beyond both clips, saturated coefficients."""
    rng = np.random.default_rng(seed)
    shape = (n,) + dist.head_shape
    return rng.choice([-1e4, -60.0, -7.5, 0.0, 7.5, 60.0, 1e4], size=shape) * rng.random(shape)


# The reference: float64, written from the paper's formulas, a different way than the module (sigmoid differences
# divided by the scale, probabilities multiplied, the G/B means with named a, b, c), one pixel at a time.
def ref_sigmoid(t):
    left, right = np.exp(np.minimum(t, 0.0)), np.exp(-np.maximum(t, 0.0))
    return np.where(t < 0, left / (1.0 + left), 1.0 / (1.0 + right))


def ref_bin_probabilities(levels, mean, log_scale):
    """P(level) for every level (levels,) of one discretized logistic; both tails in the non-cancelling form."""
    scale = math.exp(min(max(log_scale, lm.LOG_SCALE_MIN), lm.LOG_SCALE_MAX))
    x = np.arange(levels) * 2.0 / (levels - 1) - 1.0
    half = 1.0 / (levels - 1)
    lower, upper = (x - half - mean) / scale, (x + half - mean) / scale
    p = np.where(lower < 0, ref_sigmoid(upper) - ref_sigmoid(lower), ref_sigmoid(-lower) - ref_sigmoid(-upper))
    p[0] = ref_sigmoid(upper[0])  # level 0 takes everything below its upper edge
    p[-1] = ref_sigmoid(-lower[-1])  # the last level everything above its lower edge
    return p


def ref_parameters(head, channels, k):
    pi = np.exp(head[:k] - head[:k].max())
    pi /= pi.sum()
    mu = head[k : k + channels * k].reshape(channels, k)
    log_s = head[k + channels * k : k + 2 * channels * k].reshape(channels, k)
    coef = np.tanh(head[k + 2 * channels * k :].reshape(-1, k))
    return pi, mu, log_s, coef


def ref_means(mu, coef, x, c):
    """PixelCNN++: mean_R = mu_R, mean_G = mu_G + a x_R, mean_B = mu_B + b x_R + c x_G (x in [-1, 1])."""
    if c == 0:
        return mu[0]
    a, b, cc = coef if len(coef) == 3 else (coef[0], None, None)
    return mu[1] + a * x[0] if c == 1 else mu[2] + b * x[0] + cc * x[1]


def ref_conditional(head, c, earlier, channels, k, levels):
    """P(x_c = l | x_<c) for every level: sum_k w_k p_k(l) / sum_k w_k, w_k = pi_k prod_{c'<c} p_k(x_c')."""
    pi, mu, log_s, coef = ref_parameters(head, channels, k)
    x = [v * 2.0 / (levels - 1) - 1.0 for v in earlier]
    weights = pi.copy()
    for i in range(c):
        means = ref_means(mu, coef, x, i)
        weights *= np.array([ref_bin_probabilities(levels, means[j], log_s[i, j])[earlier[i]] for j in range(k)])
    means = ref_means(mu, coef, x, c)
    per = np.stack([ref_bin_probabilities(levels, means[j], log_s[c, j]) for j in range(k)])
    if weights.max() < 1e-290:  # every weight underflowed (to 0 or to an imprecise subnormal): no reference here
        return np.full(levels, np.nan)
    return (weights / weights.max()) @ per / (weights / weights.max()).sum()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("extreme", [False, True])
def test_probabilities_over_all_levels_sum_to_one(channels, levels, extreme):
    for name in distributions.RECORDS:
        dist = distributions.build(name, channels=channels, levels=levels,
                                   mixtures=min(4, levels) if distributions.record(name).takes_mixtures else None)
        head = (extreme_head if extreme else random_head)(dist, 300, seed=levels + channels)
        earlier = np.random.default_rng(1).integers(0, levels, (300, channels))
        for c in range(channels):
            log_p = dist.log_probs(head, c, earlier[:, :c])
            assert log_p.shape == (300, levels) and log_p.dtype == np.float64
            assert np.all(np.isfinite(log_p)), (name, c)
            np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=0, atol=1e-12, err_msg=f"{name} c={c}")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levels", LEVELS)
def test_mixture_log_probs_equal_the_direct_reference(channels, levels):
    k = min(3, levels)
    dist = mixture(channels, levels, k)
    head = random_head(dist, 40, seed=levels, scale=1.5)
    earlier = np.random.default_rng(2).integers(0, levels, (40, channels))
    for c in range(channels):
        log_p = dist.log_probs(head, c, earlier[:, :c])
        ref = np.stack([ref_conditional(head[n], c, earlier[n, :c], channels, k, levels) for n in range(40)])
        assert ref.min() > 1e-250  # moderate parameters: the reference's probabilities are all representable
        np.testing.assert_allclose(log_p, np.log(ref), rtol=0, atol=1e-5, err_msg=f"channel {c}")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levels", [2, 256])
def test_mixture_probabilities_equal_the_reference_for_extreme_parameters(channels, levels):
    dist = mixture(channels, levels, 2)
    head = extreme_head(dist, 60, seed=7)
    earlier = np.random.default_rng(3).integers(0, levels, (60, channels))
    for c in range(channels):
        p = np.exp(dist.log_probs(head, c, earlier[:, :c]))
        ref = np.stack([ref_conditional(head[n], c, earlier[n, :c], channels, 2, levels) for n in range(60)])
        ok = np.isfinite(ref).all(axis=1)  # where the reference's weights did not all underflow
        assert ok.mean() > 0.5
        np.testing.assert_allclose(p[ok], ref[ok], rtol=0, atol=1e-9)


def test_far_tail_log_probs_stay_exact_where_the_plain_difference_underflows():
    """Bins thousands of scales away: sigmoid(b) - sigmoid(a) is 0.0 in float64; log P is a + log(expm1(b - a))."""
    levels = 256
    level = np.arange(1, levels - 1, dtype=np.float64)
    for mean, log_scale in [(1e4, 0.0), (3.0, -7.0), (-1e4, 0.0), (-3.0, -7.0)]:
        log_p = lm.log_bin(NumpyOps, level, mean, log_scale, levels)
        inv = math.exp(-log_scale)
        x = level * 2 / (levels - 1) - 1
        a, b = inv * (x - 1 / 255 - mean), inv * (x + 1 / 255 - mean)
        # Left of the mean P = e^a (e^(b-a) - 1) (1 + O(e^b)); right of it, by symmetry, e^-b (e^(b-a) - 1) (...).
        assert np.where(b < 0, b, -a).max() < -40 and np.all(ref_sigmoid(b) - ref_sigmoid(a) < 1e-17)
        np.testing.assert_allclose(log_p, np.where(b < 0, a, -b) + np.log(np.expm1(b - a)), rtol=1e-12)


@pytest.mark.parametrize("levels", LEVELS)
def test_all_levels_at_once_equal_the_one_level_formula_out_to_the_far_tails(levels):
    """mixture_over_levels (the draw's fast path) against log_bin, one component, centres and scales far out."""
    rng = np.random.default_rng(levels)
    centres = np.concatenate([rng.normal(0, 1, 200), rng.choice([-1e4, -30.0, 30.0, 1e4], 100)])
    log_scales = np.clip(np.concatenate([rng.normal(-2, 3, 200), rng.choice([-7.0, 0.0, 7.0], 100)]), -7, 7)
    fast = lm.mixture_over_levels(NumpyOps, np.zeros((300, 1)), centres[:, None], log_scales[:, None], levels)
    slow = lm.log_bin(NumpyOps, np.arange(levels, dtype=np.float64), centres[:, None], log_scales[:, None], levels)
    assert np.all(np.isfinite(fast)) and slow.min() < -1e3  # far tails included
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels", [2, 16, 256])
def test_edge_levels_take_the_tails(levels):
    dist = mixture(1, levels, 1)
    far = np.array([[0.0, -50.0, -7.0], [0.0, 50.0, -7.0]])  # one component: mean far left, mean far right
    p = np.exp(dist.log_probs(far, 0, np.zeros((2, 0))))
    np.testing.assert_allclose(p[0, 0], 1.0, atol=1e-12)
    np.testing.assert_allclose(p[1, -1], 1.0, atol=1e-12)
    centred = np.array([[0.0, 0.0, 0.0]])  # a logistic of scale 1 at 0: level 0 holds sigmoid(-1 + h)
    p = np.exp(dist.log_probs(centred, 0, np.zeros((1, 0))))[0]
    np.testing.assert_allclose(p[0], ref_sigmoid(-1.0 + 1.0 / (levels - 1)), rtol=1e-12)
    np.testing.assert_allclose(p, p[::-1], rtol=1e-12)  # symmetric about the middle


@pytest.mark.parametrize("levels", [2, 4, 16])
def test_rgb_joint_is_the_product_of_the_channel_conditionals(levels):
    dist = mixture(3, levels, 4)
    n = 500
    head = random_head(dist, n, seed=levels, scale=2.0)
    values = np.random.default_rng(4).integers(0, levels, (n, 3))
    joint = dist.pixel_log_probs(head, values)
    chained = sum(np.take_along_axis(dist.log_probs(head, c, values[:, :c]), values[:, c : c + 1], 1)[:, 0]
                  for c in range(3))
    np.testing.assert_allclose(joint, chained, rtol=1e-12, atol=1e-10)
    if levels <= 16:  # and the joint over every pixel value sums to 1
        grid = np.stack(np.meshgrid(*[np.arange(levels)] * 3, indexing="ij"), -1).reshape(-1, 3)
        total = np.exp(dist.pixel_log_probs(np.repeat(head[:3], len(grid), 0), np.tile(grid, (3, 1))))
        np.testing.assert_allclose(total.reshape(3, -1).sum(axis=1), 1.0, atol=1e-12)


def test_nll_per_image_sums_the_pixels():
    dist = mixture(3, 16, 2)
    rng = np.random.default_rng(5)
    head = rng.normal(size=(2, 4, 5, dist.features))
    images = rng.integers(0, 16, (2, 4, 5, 3))
    expected = -dist.pixel_log_probs(head.reshape(-1, dist.features), images.reshape(-1, 3)).reshape(2, -1).sum(1)
    np.testing.assert_allclose(dist.nll_per_image(head, images), expected, rtol=1e-12)


def chi_square_limit(df: int, z: float = 3.719) -> float:
    """Wilson-Hilferty: the chi-square quantile at 1 - 1e-4 (z = 3.719), close for df >= 3."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi_square(counts, probabilities):
    """Statistic and degrees of freedom, cells expected < 5 times pooled into one."""
    expected = counts.sum() * probabilities
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    return float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()), int(keep.sum()) - 1


def ref_tempered_joint(head, channels, k, levels, temperature):
    """P_T(pixel) = prod_c P(x_c | x_<c)^(1/T) / sum_l P(l | x_<c)^(1/T), over every pixel value, from the reference."""
    grid = np.stack(np.meshgrid(*[np.arange(levels)] * channels, indexing="ij"), -1).reshape(-1, channels)
    joint = np.ones(len(grid))
    for n, value in enumerate(grid):
        for c in range(channels):
            q = ref_conditional(head, c, value[:c], channels, k, levels) ** (1.0 / temperature)
            joint[n] *= q[value[c]] / q.sum()
    return grid, joint


@pytest.mark.parametrize("channels,levels", [(1, 16), (3, 4)])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_mixture_draws_pass_chi_square_against_the_probabilities(channels, levels, temperature):
    dist = mixture(channels, levels, 3)
    head = np.random.default_rng(8).normal(0, 0.7, dist.head_shape)
    head[3 + 2 * channels * 3 :] *= 3  # strong channel coupling, so drawing G given R matters
    n = 40_000
    u = np.random.default_rng(9).random((n, channels))
    draws = dist.draw_pixel(np.repeat(head[None], n, 0), u, temperature)
    grid, joint = ref_tempered_joint(head, channels, 3, levels, temperature)
    np.testing.assert_allclose(joint.sum(), 1.0, atol=1e-12)
    index = np.ravel_multi_index(tuple(draws.T), (levels,) * channels)
    counts = np.bincount(index, minlength=len(grid))
    stat, df = chi_square(counts, joint)
    assert stat < chi_square_limit(df), (stat, df)
    # Sharp: the same draws against another temperature, or against R, G, B drawn independently, fail by far.
    _, other = ref_tempered_joint(head, channels, 3, levels, temperature * 1.6)
    assert chi_square(counts, other)[0] > 5 * chi_square_limit(df)
    if channels == 3:
        marginals = [np.bincount(draws[:, c], minlength=levels) / n for c in range(3)]
        independent = np.einsum("i,j,k->ijk", *marginals).ravel()
        assert chi_square(counts, independent)[0] > 5 * chi_square_limit(df)


def toy_logits_fn(levels, channels, seed=0):
    """A causal stand-in network: each sub-pixel's logits depend on every earlier sub-pixel in raster, R->G->B order."""
    weights = np.random.default_rng(seed).normal(size=(levels,))

    def logits_fn(images, labels):
        flat = images.reshape(len(images), -1).astype(np.float64)
        earlier = np.concatenate([np.zeros((len(images), 1)), np.cumsum(flat, axis=1)[:, :-1]], axis=1)
        z = np.sin(earlier[..., None] * 0.37 + weights) * 3.0  # (N, H*W*C, levels)
        return z.reshape(images.shape + (levels,)).astype(np.float32)

    return logits_fn


@pytest.mark.parametrize("channels", [1, 3])
def test_softmax_plugin_draws_todays_pixels_from_the_same_uniforms(channels):
    levels, shape, n, seed, temperature = 7, (3, 4, channels), 5, 11, 0.8
    logits_fn = toy_logits_fn(levels, channels)
    dist = distributions.build("softmax", channels=channels, levels=levels)
    expected = sample_naive(logits_fn, distribution=dist, num_images=n, shape=shape, seed=seed, temperature=temperature)
    u = uniforms(n, *shape, seed)
    images = np.zeros((n,) + shape, np.float32)
    for i in range(shape[0]):
        for j in range(shape[1]):
            for c in range(channels):  # channel_masks: the network runs again for every sub-pixel
                head = logits_fn(images, None)[:, i, j]
                images[:, i, j, c] = dist.draw(head, c, images[:, i, j, :c], u[:, i, j, c], temperature)
    assert dist.steps_per_pixel == channels
    np.testing.assert_array_equal(images.astype(np.uint8), expected)
    assert len(np.unique(expected)) > 3  # the toy network draws varied pixels: the comparison can fail


def test_pixel_draw_needs_a_head_per_pixel_not_per_sub_pixel():
    with pytest.raises(DistributionError, match="draw channel by channel"):
        distributions.build("softmax", channels=3, levels=4).draw_pixel(np.zeros((1, 3, 4)), np.zeros((1, 3)))
    assert mixture(3, 16).steps_per_pixel == 1


@pytest.mark.parametrize("request_, message", [
    (dict(name="gaussian"), r"unknown output distribution 'gaussian'; choose one of softmax, logistic_mixture"),
    (dict(name="logistic_mixture"), r"logistic_mixture needs the number of mixture components"),
    (dict(name="logistic_mixture", mixtures=0), r"mixtures \(at most levels, 16\) must be an integer in 1..16, got 0"),
    (dict(name="logistic_mixture", mixtures=17), r"mixtures .* got 17"),
    (dict(name="logistic_mixture", mixtures=2.5), r"mixtures .* got 2.5"),
    (dict(name="logistic_mixture", mixtures=True), r"mixtures .* got True"),
    (dict(name="softmax", mixtures=5), r"softmax takes no mixture components"),
    (dict(name="softmax", levels=1), r"levels must be an integer in 2..256, got 1"),
    (dict(name="logistic_mixture", levels=257, mixtures=2), r"levels must be an integer in 2..256, got 257"),
    (dict(name="softmax", channels=4), r"channels must be an integer in 1..3, got 4"),
])
def test_bad_requests_are_refused_in_one_line(request_, message):
    kwargs = {"channels": 3, "levels": 16, **request_}
    with pytest.raises(DistributionError, match=message) as error:
        distributions.check(kwargs.pop("name"), **kwargs)
    assert "\n" not in str(error.value)


def test_the_valid_extremes_build():
    assert mixture(3, 2, 2).features == 2 * 10 and mixture(1, 256, 256).features == 256 * 3
    assert distributions.build("softmax", channels=3, levels=256).features == 768


def test_a_head_of_the_wrong_size_is_named():
    with pytest.raises(DistributionError, match=r"needs \(\.\.\., 30\): does it match the model config"):
        mixture(3, 16, 3).log_probs(np.zeros((2, 31)), 0, np.zeros((2, 0)))
    with pytest.raises(DistributionError, match=r"needs \(\.\.\., 3, 16\)"):
        softmax = distributions.build("softmax", channels=3, levels=16)
        softmax.nll_per_image(np.zeros((1, 2, 2, 3, 8)), np.zeros((1, 2, 2, 3)))


def test_values_outside_the_levels_are_refused_not_scored():
    dist = mixture(3, 16, 2)
    head = np.zeros((1, 2, 2, dist.features))
    for bad in (16, -1, 2.5):
        images = np.zeros((1, 2, 2, 3))
        images[0, 1, 1, 2] = bad
        with pytest.raises(DistributionError, match=r"the images must hold whole levels in 0..15"):
            dist.nll_per_image(head, images)
    with pytest.raises(DistributionError, match=r"earlier channels must hold whole levels in 0..15, got .* 0..99"):
        dist.draw(head[0, 0], 1, np.array([[0], [99]]), np.full(2, 0.5))
    assert dist.log_probs(np.zeros((0, dist.features)), 1, np.zeros((0, 1))).shape == (0, 16)
    with pytest.raises(DistributionError, match=r"the images must hold whole levels in 0..3"):
        softmax = distributions.build("softmax", channels=1, levels=4)
        softmax.nll_per_image(np.zeros((1, 1, 1, 1, 4)), np.full((1, 1, 1, 1), 4))


def test_serve_distributions_import_no_tensorflow():
    script = (
        "import numpy as np\nfrom serve import distributions\n"
        "d = distributions.build('logistic_mixture', channels=3, levels=256, mixtures=5)\n"
        "head = np.random.default_rng(0).normal(size=(4, d.features))\n"
        "print(d.draw_pixel(head, np.random.default_rng(1).random((4, 3)), 0.7).tolist())\n"
    )
    result = run_without_tensorflow(script)
    assert result.returncode == 0, result.stderr
    dist = mixture(3, 256, 5)
    head = np.random.default_rng(0).normal(size=(4, dist.features))
    assert result.stdout.strip() == str(dist.draw_pixel(head, np.random.default_rng(1).random((4, 3)), 0.7).tolist())
