"""Bad inputs become clxent.Error with the right status, and the context
answers correctly afterwards."""
import numpy as np
import pytest

import clxent
from clxent import ffi, lib
from conftest import DEVICE

X = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], np.float32)
Y = np.array([2, 1, 0])
# docs/semantics.md section 14: the seed article's batch
GOLDEN_LOSS = 1.4076059644443801
GOLDEN_GRAD = np.array([[0.0300, 0.0816, -0.1116], [0.0300, -0.2518, 0.2217],
                        [-0.3033, 0.0816, 0.2217]])
X4 = np.zeros((2, 5, 3, 4), np.float32)
Y4 = np.zeros((2, 3, 4), np.int64)
Y4[1, 2, 3] = 9


def status_of(code):
    """The C library's name for a status code, without its prefix."""
    assert isinstance(code, int) and code > 0
    name = ffi.string(lib.clxent_status_name(code)).decode()
    assert name.startswith("CLXENT_STATUS_")
    return name[len("CLXENT_STATUS_"):]


def good_call_works(ctx):
    loss, grad = ctx.cross_entropy(X, Y)
    assert abs(float(loss) - GOLDEN_LOSS) <= 2e-6
    np.testing.assert_allclose(grad, GOLDEN_GRAD, atol=0.5e-4 + 1e-6)
    np.testing.assert_allclose(ctx.softmax(X[0]), [0.0900, 0.2447, 0.6652],
                               atol=0.5e-4 + 1e-6)


BAD = {
    # name: (call on a context, status, text the message must hold)
    "target_out_of_range": (lambda c: c.cross_entropy(X, np.array([0, 3, 1])),
                            "TARGET_OUT_OF_RANGE", "targets[1] = 3"),
    "target_negative": (lambda c: c.cross_entropy(X, np.array([0, 1, -1])),
                        "TARGET_OUT_OF_RANGE", "targets[2] = -1"),
    "target_out_of_range_nd": (lambda c: c.cross_entropy(X4, Y4),
                               "TARGET_OUT_OF_RANGE", "at (1, 2, 3) = 9"),
    "target_out_of_range_unbatched": (lambda c: c.cross_entropy(X[0], np.array(5)),
                                      "TARGET_OUT_OF_RANGE", "= 5"),
    "nll_target_out_of_range": (lambda c: c.nll_loss(X, np.array([0, 1, 7])),
                                "TARGET_OUT_OF_RANGE", "= 7"),
    "target_out_of_range_large": (  # arrays the binding may use in place
        lambda c: c.cross_entropy(np.zeros((64, 300), np.float32),
                                  np.arange(64) * 5),
        "TARGET_OUT_OF_RANGE", "targets[60] = 300"),
    "zero_classes": (lambda c: c.cross_entropy(np.zeros((3, 0), np.float32), Y),
                     "INVALID_SHAPE", "classes"),
    "softmax_zero_classes": (lambda c: c.softmax(np.zeros((3, 0), np.float32)),
                             "INVALID_SHAPE", "classes"),
    "target_shape": (lambda c: c.cross_entropy(X, np.array([0, 1])),
                     "INVALID_SHAPE", "target"),
    "target_shape_nd": (lambda c: c.cross_entropy(X4, Y4[:, :2]),
                        "INVALID_SHAPE", "target"),
    "probs_shape": (lambda c: c.cross_entropy(X, np.ones((3, 2), np.float32)),
                    "INVALID_SHAPE", "target"),
    "target_dtype_bool": (lambda c: c.cross_entropy(X, np.array([True, False, True])),
                          "INVALID_DTYPE", "target"),
    "target_dtype_complex": (lambda c: c.cross_entropy(X, np.ones(3, np.complex64)),
                             "INVALID_DTYPE", "target"),
    "nll_probs_target": (lambda c: c.nll_loss(X, np.ones((3, 3), np.float32)),
                         "INVALID_DTYPE", "target"),
    "weight_shape": (lambda c: c.cross_entropy(X, Y, weight=np.ones(4)),
                     "INVALID_SHAPE", "weight"),
    "weight_2d": (lambda c: c.cross_entropy(X, Y, weight=np.ones((3, 1))),
                  "INVALID_SHAPE", "weight"),
    "reduction": (lambda c: c.cross_entropy(X, Y, reduction="avg"),
                  "INVALID_ARGUMENT", "reduction"),
    "nll_reduction": (lambda c: c.nll_loss(X, Y, reduction=None),
                      "INVALID_ARGUMENT", "reduction"),
    "dtype_name": (lambda c: c.cross_entropy(X, Y, dtype="f64"), "INVALID_DTYPE", "f64"),
    "softmax_dtype_name": (lambda c: c.softmax(X, dtype="bfloat16"),
                           "INVALID_DTYPE", "bfloat16"),
    "integer_input": (lambda c: c.cross_entropy(X.astype(np.int32), Y),
                      "INVALID_DTYPE", "int32"),
    "0d_input": (lambda c: c.cross_entropy(np.float32(1.0), np.array(0)),
                 "INVALID_SHAPE", "0-d"),
    "0d_nll": (lambda c: c.nll_loss(np.float32(1.0), np.array(0)), "INVALID_SHAPE", "0-d"),
    "dim_high": (lambda c: c.softmax(X, dim=2), "INVALID_ARGUMENT", "dim"),
    "dim_low": (lambda c: c.log_softmax(X, dim=-3), "INVALID_ARGUMENT", "dim"),
    "dim_0d": (lambda c: c.softmax(np.float32(1.0), dim=1), "INVALID_ARGUMENT", "dim"),
    "dim_float": (lambda c: c.softmax(X, dim=1.0), "INVALID_ARGUMENT", "dim"),
    "smoothing_high": (lambda c: c.cross_entropy(X, Y, label_smoothing=1.5),
                       "INVALID_ARGUMENT", "label_smoothing"),
    "smoothing_negative": (lambda c: c.cross_entropy(X, Y, label_smoothing=-0.1),
                           "INVALID_ARGUMENT", "label_smoothing"),
    "smoothing_nan": (lambda c: c.cross_entropy(X, Y, label_smoothing=float("nan")),
                      "INVALID_ARGUMENT", "label_smoothing"),
    "z_loss_negative": (lambda c: c.cross_entropy(X, Y, z_loss=-1e-3),
                        "INVALID_ARGUMENT", "z_loss"),
    "softcap_negative": (lambda c: c.cross_entropy(X, Y, softcap=-1.0),
                         "INVALID_ARGUMENT", "softcap"),
    "softmax_softcap_negative": (lambda c: c.softmax(X, softcap=-2.0),
                                 "INVALID_ARGUMENT", "softcap"),
    "logit_scale_zero": (lambda c: c.log_softmax(X, logit_scale=0.0),
                         "INVALID_ARGUMENT", "logit_scale"),
    "probs_ignore_index": (lambda c: c.cross_entropy(X, np.full((3, 3), 1 / 3),
                                                     ignore_index=0),
                           "INVALID_ARGUMENT", "ignore_index"),
    # uint64 labels past int64 would wrap (2**64 - 100 to -100, ignored)
    "uint64_label_wraps": (lambda c: c.cross_entropy(
        X, np.array([2, 2**64 - 100, 0], np.uint64)), "TARGET_OUT_OF_RANGE",
        "past int64"),
    "ignore_index_float": (lambda c: c.cross_entropy(X, Y, ignore_index=3.7),
                           "INVALID_ARGUMENT", "ignore_index"),
    "ignore_index_past_int64": (lambda c: c.cross_entropy(X, Y, ignore_index=2**63),
                                "INVALID_ARGUMENT", "ignore_index"),
    "smoothing_not_a_number": (lambda c: c.cross_entropy(X, Y, label_smoothing="x"),
                               "INVALID_ARGUMENT", "label_smoothing"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input(ctx, name):
    call, status, text = BAD[name]
    with pytest.raises(clxent.Error) as info:
        call(ctx)
    e = info.value
    assert e.status == status, e
    assert status_of(e.code) == status
    assert text in e.message and str(e).startswith(status)
    good_call_works(ctx)


def test_bad_label_writes_nothing_and_names_row(ctx):
    """The first bad row is named; earlier good calls' results are kept."""
    loss, _ = ctx.cross_entropy(X, Y, reduction="none")
    with pytest.raises(clxent.Error) as info:
        ctx.cross_entropy(X, np.array([0, 1, 2, 3, 4, 5, -100, 2])[[0, 1, 5]])
    assert "targets[2] = 5" in info.value.message
    np.testing.assert_allclose(loss, [0.4076, 1.4076, 2.4076], atol=1e-4)
    good_call_works(ctx)


def test_bad_device_spec():
    with pytest.raises(clxent.Error) as info:
        clxent.Context("no-such-device-xyz")
    assert info.value.status == "DEVICE_NOT_FOUND"
    assert status_of(info.value.code) == "DEVICE_NOT_FOUND"
    assert "no-such-device-xyz" in info.value.message


def test_closed_context():
    c = clxent.Context(DEVICE)
    good_call_works(c)
    c.close()
    c.close()  # idempotent
    assert repr(c) == "<clxent.Context closed>"
    for call in (lambda: c.cross_entropy(X, Y), lambda: c.softmax(X),
                 lambda: c.nll_loss(X, Y), lambda: c.device):
        with pytest.raises(clxent.Error) as info:
            call()
        assert info.value.status == "INVALID_ARGUMENT"
        assert "closed" in info.value.message
    with clxent.Context(DEVICE) as again:
        good_call_works(again)
    with pytest.raises(clxent.Error):
        again.softmax(X)


def test_error_is_an_exception_with_fields():
    e = clxent.Error("INVALID_SHAPE", "what went wrong", 3)
    assert isinstance(e, Exception)
    assert (e.status, e.code, e.message) == ("INVALID_SHAPE", 3, "what went wrong")
