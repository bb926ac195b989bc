"""The array backend: the host/device door, errors, and the ``out=`` helpers."""

import numpy as np
import pytest

from conftest import to_np
import cortexsim
from cortexsim import Backend, BackendError, ConfigurationError, get_backend
from cortexsim.backend import _INTO


def test_to_numpy_returns_an_independent_host_copy(backend_name):
    be = get_backend(backend_name, "float64")
    host = np.arange(6.0).reshape(2, 3)
    x = be.asarray(host)
    copy = be.to_numpy(x)
    assert type(copy) is np.ndarray
    assert copy.dtype == np.float64 and copy.shape == (2, 3)
    np.testing.assert_array_equal(copy, host)
    copy[0, 0] = 100.0  # writing the copy leaves the backend array alone
    assert be.to_numpy(x)[0, 0] == 0.0
    x[...] = 7.0  # and writing the backend array leaves the earlier copy alone
    assert copy[1, 2] == 5.0
    host[0, 1] = -1.0  # asarray copied the host array too
    assert be.to_numpy(x)[0, 1] == 7.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_and_scalar(backend_name, dtype):
    be = get_backend(backend_name, dtype)
    assert be.dtype_name == dtype
    x = be.asarray([1.5, 2.5])
    assert be.to_numpy(x).dtype == np.dtype(dtype)
    assert be.zeros((2, 3)).shape == (2, 3)
    assert be.to_numpy(be.zeros((2,))).dtype == np.dtype(dtype)
    s = be.scalar(be.sum_of_squares(x))
    assert isinstance(s, float) and s == pytest.approx(1.5**2 + 2.5**2, rel=1e-7)


def test_copy_is_independent(backend_name):
    be = get_backend(backend_name, "float64")
    x = be.asarray([1.0, 2.0])
    y = be.copy(x)
    y[...] = 0.0
    np.testing.assert_array_equal(be.to_numpy(x), [1.0, 2.0])


def test_sum_of_squares_of_non_contiguous_2d(backend_name):
    be = get_backend(backend_name, "float64")
    host = np.random.default_rng(0).normal(size=(4, 5))
    x = be.asarray(host)
    got = be.scalar(be.sum_of_squares(be.xp.matrix_transpose(x)))
    assert got == pytest.approx(float(np.sum(host**2)), rel=1e-13)


def test_get_backend_passes_a_backend_through():
    be = get_backend("numpy", "float64")
    assert get_backend(be) is be


def test_unknown_backend_names_allowed_and_suggests():
    with pytest.raises(ConfigurationError, match=r"backend: unknown backend 'nunpy'; allowed: numpy, cupy, array_api_strict \(did you mean 'numpy'\?\)"):
        get_backend("nunpy")


def test_unknown_dtype_names_allowed_and_suggests():
    with pytest.raises(ConfigurationError, match=r"dtype: unknown dtype 'float46'; allowed: float32, float64 \(did you mean 'float64'\?\)"):
        get_backend("numpy", "float46")
    with pytest.raises(ConfigurationError, match="dtype"):
        cortexsim.build(cortexsim.HierarchySpec.from_sizes([2, 2]), dtype="int32")


def test_cupy_without_gpu_is_a_backend_error():
    reason = cortexsim.available_backends()["cupy"]
    if reason is None:
        pytest.skip("cupy is usable here")
    with pytest.raises(BackendError, match=r"backend 'cupy' cannot be used: .*numpy"):
        get_backend("cupy")
    with pytest.raises(BackendError):
        cortexsim.build(cortexsim.HierarchySpec.from_sizes([2, 2]), backend="cupy")


def test_available_backends_reports_every_backend():
    status = cortexsim.available_backends()
    assert set(status) == {"numpy", "cupy", "array_api_strict"}
    assert status["numpy"] is None
    assert all(v is None or isinstance(v, str) for v in status.values())


# expected results of the helpers, computed on the host
_REFERENCE = {
    "add": (2, np.add),
    "subtract": (2, np.subtract),
    "multiply": (2, np.multiply),
    "divide": (2, np.divide),
    "tanh": (1, np.tanh),
    "exp": (1, np.exp),
    "sqrt": (1, np.sqrt),
    "square": (1, np.square),
    "negative": (1, np.negative),
}


@pytest.mark.parametrize("name", sorted(_INTO))
def test_helpers_write_into_out(backend_name, name):
    be = get_backend(backend_name, "float64")
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 2.0, size=(3, 4))
    b = rng.uniform(0.5, 2.0, size=(3, 4)) if name != "matmul" else rng.normal(size=(4, 2))
    if name == "matmul":
        nargs, expected = 2, a @ b
    else:
        nargs, ref = _REFERENCE[name]
        expected = ref(a, b) if nargs == 2 else ref(a)
    out = be.asarray(np.full(expected.shape, np.nan))
    args = (be.asarray(a), be.asarray(b))[:nargs]
    result = getattr(be, name)(*args, out=out)
    assert result is out
    np.testing.assert_allclose(be.to_numpy(out), expected, rtol=1e-14)


def test_helpers_accept_python_scalars_and_aliasing(backend_name):
    be = get_backend(backend_name, "float64")
    a = np.array([[0.25, -1.0], [2.0, 3.0]])
    x = be.asarray(a)
    be.multiply(x, 0.5, out=x)  # in place, scalar second
    np.testing.assert_allclose(to_np(be, x), a * 0.5)
    be.subtract(1.0, x, out=x)  # scalar first
    np.testing.assert_allclose(to_np(be, x), 1.0 - a * 0.5)


def test_helpers_agree_between_numpy_and_strict():
    if cortexsim.available_backends()["array_api_strict"] is not None:
        pytest.skip("array_api_strict missing")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4))
    results = []
    for name in ("numpy", "array_api_strict"):
        be = Backend(name, "float64")
        out = be.empty((5, 4))
        be.matmul(be.asarray(a), be.asarray(b), out=out)
        be.tanh(out, out=out)
        be.multiply(out, out, out=out)
        results.append(be.to_numpy(out))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(results[0], np.tanh(a @ b) ** 2, rtol=1e-14)
