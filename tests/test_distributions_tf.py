"""Output distributions in TensorFlow: the same numbers as serve's numpy, the training loss and its gradients."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pixelcnn_tf import distributions
from pixelcnn_tf.distributions.base import DistributionLoss
from pixelcnn_tf.errors import UserError

# float32 TensorFlow vs float64 numpy: log-probabilities of magnitude up to ~30 nats agree to float32 rounding.
LOG_PROB_ATOL, LOG_PROB_RTOL = 1e-4, 1e-5


def build(name, channels, levels, mixtures=None):
    return distributions.build(name, channels=channels, levels=levels, mixtures=mixtures)


def heads_and_images(dist, seed, shape=(3, 4, 5), scale=1.0):
    rng = np.random.default_rng(seed)
    head = rng.normal(0.0, scale, shape + dist.spec.head_shape).astype(np.float32)
    images = rng.integers(0, dist.spec.levels, shape + (dist.spec.channels,)).astype(np.int32)
    return head, images


CASES = [("softmax", 1, 2, None), ("softmax", 3, 16, None), ("logistic_mixture", 1, 2, 2),
         ("logistic_mixture", 1, 256, 5), ("logistic_mixture", 3, 16, 4), ("logistic_mixture", 3, 256, 10)]


@pytest.mark.parametrize("name,channels,levels,mixtures", CASES)
def test_tensorflow_log_probs_and_nll_equal_numpy(name, channels, levels, mixtures):
    dist = build(name, channels, levels, mixtures)
    head, images = heads_and_images(dist, seed=levels + channels, scale=2.0)
    for c in range(channels):
        earlier = images[..., :c]
        got = dist.log_probs(tf.constant(head), c, tf.constant(earlier))
        expected = dist.spec.log_probs(head, c, earlier)
        assert got.dtype == tf.float32 and tuple(got.shape) == expected.shape == head.shape[:3] + (levels,)
        np.testing.assert_allclose(got.numpy(), expected, rtol=LOG_PROB_RTOL, atol=LOG_PROB_ATOL)
    nll = dist.nll_per_image(tf.constant(head), tf.constant(images))
    assert nll.dtype == tf.float32 and tuple(nll.shape) == (3,)
    np.testing.assert_allclose(nll.numpy(), dist.spec.nll_per_image(head, images), rtol=1e-5)


def test_softmax_loss_is_todays_sparse_categorical_crossentropy():
    dist = build("softmax", 3, 16)
    head, images = heads_and_images(dist, seed=1, scale=3.0)
    today = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(images, head)
    np.testing.assert_allclose(float(dist.loss()(images, head)), float(today), rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_mixture_loss_is_nats_per_sub_pixel(channels):
    dist = build("logistic_mixture", channels, 256, 5)
    head, images = heads_and_images(dist, seed=2)
    dims = images[0].size
    expected = dist.spec.nll_per_image(head, images).mean() / dims
    np.testing.assert_allclose(float(dist.loss()(images, head)), expected, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("levels", [2, 256])
def test_mixture_loss_gradient_is_finite_for_extreme_parameters(channels, levels):
    dist = build("logistic_mixture", channels, levels, 2)
    rng = np.random.default_rng(levels)
    head = rng.choice([-1e4, -100.0, -8.0, 0.0, 8.0, 100.0, 1e4], size=(4, 3, 3) + dist.spec.head_shape)
    head = tf.Variable(head.astype(np.float32))
    images = tf.constant(rng.integers(0, levels, (4, 3, 3, channels)), tf.int32)
    with tf.GradientTape() as tape:
        loss = dist.loss()(images, head)
    gradient = tape.gradient(loss, head)
    assert np.isfinite(float(loss)) and np.all(np.isfinite(gradient.numpy()))
    assert np.abs(gradient.numpy()).max() > 0  # it trains: the extreme parameters still get a gradient


def test_the_portable_softplus_equals_tensorflows_with_its_gradient():
    from pixelcnn_tf.distributions.arrays import TensorFlowOps

    x = tf.constant([-1e4, -100.0, -20.0, -1.0, 0.0, 1e-3, 1.0, 20.0, 100.0, 1e4])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = TensorFlowOps.softplus(x)
    np.testing.assert_allclose(y.numpy(), tf.nn.softplus(x).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), tf.sigmoid(x).numpy(), rtol=1e-6, atol=1e-7)


def test_log_probs_trace_with_an_unknown_batch():
    """The sampler graph's shape: a tf.function over a batch of any size, one pixel's head and its earlier channels."""
    dist = build("logistic_mixture", 3, 16, 3)
    f = tf.function(lambda head, earlier: dist.log_probs(head, 2, earlier), input_signature=[
        tf.TensorSpec((None, dist.spec.features), tf.float32), tf.TensorSpec((None, 2), tf.float32)])
    head, images = heads_and_images(dist, seed=3, shape=(6,))
    got = f(tf.constant(head), tf.constant(images[:, :2], tf.float32))
    np.testing.assert_allclose(got.numpy(), dist.spec.log_probs(head, 2, images[:, :2]), atol=LOG_PROB_ATOL)


def test_the_loss_survives_keras_serialization():
    loss = build("logistic_mixture", 3, 16, 4).loss()
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, DistributionLoss) and again.get_config() == loss.get_config()
    head, images = heads_and_images(build("logistic_mixture", 3, 16, 4), seed=4)
    assert float(again(images, head)) == float(loss(images, head))


def test_check_output_refuses_in_one_user_error_line():
    with pytest.raises(UserError, match=r"^mixtures \(at most levels, 4\) must be an integer in 1..4, got 10$"):
        distributions.check_output("logistic_mixture", channels=3, levels=4, mixtures=10)
    with pytest.raises(UserError, match=r"^unknown output distribution 'categorical'"):
        distributions.build("categorical", channels=1, levels=2)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_the_sampler_graphs_draw_on_mixture_log_probs_draws_numpys_pixels(temperature):
    """pixelcnn_tf.sampler_graph.draw (float32) over TensorFlow's log-probs picks numpy's float64 levels, R -> G -> B,
    from the same uniforms, up to the rare uniform within float32 rounding of a CDF step (as for softmax today)."""
    from pixelcnn_tf.sampler_graph import draw
    from serve.graph import as_float32_uniforms

    dist = build("logistic_mixture", 3, 256, 5)
    n = 4000
    rng = np.random.default_rng(6)
    head = rng.normal(0.0, 1.0, (n, dist.spec.features)).astype(np.float32)
    head[:, 5 + 15 : 5 + 30] -= 2.5  # log-scales around e^-2.5: peaked enough for many distinct levels
    u = as_float32_uniforms(rng.random((n, 3)))
    expected = dist.spec.draw_pixel(head, u.astype(np.float64), temperature)
    values = tf.zeros((n, 0))
    for c in range(3):
        log_weights = dist.log_weights(tf.constant(head), c, values)
        level = draw(log_weights, tf.constant(u[:, c : c + 1]), 1.0 / temperature, 256)
        values = tf.concat([values, level[:, None]], axis=1)
    agreement = (values.numpy() == expected).mean()
    assert agreement >= 0.999, agreement
    assert len(np.unique(expected)) > 100


@pytest.mark.slow
@pytest.mark.parametrize("name,mixtures", [("softmax", None), ("logistic_mixture", 3)])
def test_model_fit_trains_on_the_loss_and_reports_nats_per_sub_pixel(name, mixtures):
    """A 1x1 convolution (not causal: only the loss is under test) fits with the distribution's loss; Keras's
    evaluate() then equals numpy's NLL of the model's heads divided by the sub-pixels."""
    dist = build(name, 3, 16, mixtures)
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(8, 2.5, (64, 4, 4, 3)).round(), 0, 15).astype(np.int32)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(dist.spec.features, 1)(keras.layers.Rescaling(2 / 15, offset=-1.0)(inputs))
    if dist.spec.head_shape != (dist.spec.features,):
        x = keras.layers.Reshape((4, 4) + dist.spec.head_shape)(x)
    keras.utils.set_random_seed(0)
    model = keras.Model(inputs, x)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=dist.loss())
    history = model.fit(images.astype(np.float32), images, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert all(np.isfinite(history)) and history[-1] < 0.8 * history[0], history
    evaluated = model.evaluate(images.astype(np.float32), images, batch_size=16, verbose=0)
    heads = model.predict(images.astype(np.float32), verbose=0)
    np.testing.assert_allclose(evaluated, dist.spec.nll_per_image(heads, images).mean() / (4 * 4 * 3), rtol=1e-5)


def converted_log_probs(runtime: str, function, spec, head, earlier):
    """function converted with TFLite builtins only or tf2onnx, run on (head, earlier)."""
    if runtime == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], function)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        interpreter = Interpreter(model_content=converter.convert())
        inputs = {d["name"]: d["index"] for d in interpreter.get_input_details()}
        for name, value in (("head", head), ("earlier", earlier)):
            interpreter.resize_tensor_input(inputs[name], value.shape)
        interpreter.allocate_tensors()
        for name, value in (("head", head), ("earlier", earlier)):
            interpreter.set_tensor(inputs[name], value)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    import onnxruntime
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17)
    session = onnxruntime.InferenceSession(proto.SerializeToString())
    return session.run(None, {"head": head, "earlier": earlier})[0]


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_mixture_log_probs_convert_to_tflite_builtins_and_onnx(runtime):
    """The sampler graph will carry these ops: each has a builtin in both runtimes (no Expm1, Log1p, Flex ops)."""
    dist = build("logistic_mixture", 3, 256, 5)
    spec = [tf.TensorSpec((None, dist.spec.features), tf.float32, name="head"),
            tf.TensorSpec((None, 2), tf.float32, name="earlier")]
    function = tf.function(lambda head, earlier: {"log_probs": dist.log_probs(head, 2, earlier)}, input_signature=spec)
    rng = np.random.default_rng(9)
    head = rng.normal(0.0, 1.0, (64, dist.spec.features)).astype(np.float32)
    head[:16] *= 30.0  # far tails and both log-scale clips
    earlier = rng.integers(0, 256, (64, 2)).astype(np.float32)
    got = converted_log_probs(runtime, function, spec, head, earlier)
    np.testing.assert_allclose(got, dist.spec.log_probs(head, 2, earlier), rtol=LOG_PROB_RTOL, atol=LOG_PROB_ATOL)
