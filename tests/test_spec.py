"""Model descriptions: validation names the field the user wrote."""

import pytest

from cortexsim import AreaSpec, ConfigurationError, HierarchySpec, Prior


def areas(*specs):
    return tuple(AreaSpec(**s) for s in specs)


def test_from_sizes_and_round_trip():
    spec = HierarchySpec.from_sizes([6, 5, 4], activation="gelu", output_activation="linear")
    assert spec.sizes == (6, 5, 4)
    assert [a.name for a in spec.areas] == ["area0", "area1", "area2"]
    assert [a.activation for a in spec.areas][1:] == ["gelu", "linear"]
    assert HierarchySpec.from_dict(spec.to_dict()) == spec
    with_prior = HierarchySpec(
        areas(dict(name="x", size=3), dict(name="z", size=2, prior=Prior("laplace", 0.0, 2.0)))
    )
    assert HierarchySpec.from_dict(with_prior.to_dict()) == with_prior


def test_unknown_activation_names_field_allowed_and_suggestion():
    with pytest.raises(
        ConfigurationError,
        match=r"model\.areas\[1\]\.activation: unknown activation 'relux'; "
        r"allowed: gelu, linear, relu, sigmoid, tanh \(did you mean 'relu'\?\)",
    ):
        HierarchySpec(areas(dict(name="a", size=2), dict(name="b", size=2, activation="relux")))


def test_unknown_feedback_activation():
    with pytest.raises(ConfigurationError, match=r"areas\[1\]\.feedback_activation: unknown activation 'sigmoidd'.*did you mean 'sigmoid'"):
        HierarchySpec(areas(dict(name="a", size=2), dict(name="b", size=2, feedback_activation="sigmoidd")))


@pytest.mark.parametrize("size", [0, -3])
def test_size_must_be_positive(size):
    with pytest.raises(ConfigurationError, match=rf"model\.areas\[1\]\.size: expected a whole number >= 1, got {size}"):
        HierarchySpec(areas(dict(name="a", size=2), dict(name="b", size=size)))


@pytest.mark.parametrize("size", [2.0, "3", True, None])
def test_size_must_be_an_int(size):
    with pytest.raises(ConfigurationError, match=r"model\.areas\[0\]\.size: expected a whole number"):
        HierarchySpec(areas(dict(name="a", size=size), dict(name="b", size=2)))


def test_duplicate_names():
    with pytest.raises(ConfigurationError, match=r"model\.areas\[2\]\.name: 'v1' is already the name of areas\[1\]"):
        HierarchySpec(areas(dict(name="x", size=2), dict(name="v1", size=2), dict(name="v1", size=2)))


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_areas(count):
    with pytest.raises(ConfigurationError, match=rf"model\.areas: a hierarchy needs at least 2 areas.*got {count}"):
        HierarchySpec(areas(*[dict(name="x", size=2)] * count))


def test_unknown_key_in_from_dict_suggests():
    data = HierarchySpec.from_sizes([3, 2]).to_dict()
    data["wieght_init"] = "normal"
    with pytest.raises(ConfigurationError, match=r"model\.wieght_init: unknown key; allowed: .*\(did you mean 'weight_init'\?\)"):
        HierarchySpec.from_dict(data)
    data = HierarchySpec.from_sizes([3, 2]).to_dict()
    data["areas"][1]["activaton"] = "tanh"
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.activaton: unknown key.*did you mean 'activation'"):
        HierarchySpec.from_dict(data)


def test_missing_required_keys():
    with pytest.raises(ConfigurationError, match=r"model\.areas: required key is missing"):
        HierarchySpec.from_dict({"name": "m"})
    with pytest.raises(ConfigurationError, match=r"model\.areas\[0\]\.size: required key is missing"):
        HierarchySpec.from_dict({"areas": [{"name": "x"}, {"name": "y", "size": 2}]})


def test_bad_prior_kind_and_scale():
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.prior\.kind: unknown prior 'gausian'; allowed: gaussian, laplace, cauchy \(did you mean 'gaussian'\?\)"):
        HierarchySpec.from_dict({"areas": [{"name": "x", "size": 2}, {"name": "z", "size": 2, "prior": {"kind": "gausian"}}]})
    with pytest.raises(ConfigurationError, match=r"areas\[1\]\.prior\.scale: must be > 0"):
        HierarchySpec(areas(dict(name="x", size=2), dict(name="z", size=2, prior=Prior("gaussian", 0.0, 0.0))))
    with pytest.raises(ConfigurationError, match=r"areas\[1\]\.prior\.sclae: unknown key.*did you mean 'scale'"):
        HierarchySpec.from_dict({"areas": [{"name": "x", "size": 2}, {"name": "z", "size": 2, "prior": {"sclae": 1.0}}]})


@pytest.mark.parametrize("precision", [0.0, -1.0, float("nan"), "1"])
def test_bad_precision(precision):
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.precision"):
        HierarchySpec(areas(dict(name="x", size=2), dict(name="z", size=2, precision=precision)))


def test_bad_init_choices():
    with pytest.raises(ConfigurationError, match=r"model\.weight_init: unknown value 'glorot'.*allowed: glorot_uniform, glorot_normal, normal"):
        HierarchySpec.from_sizes([2, 2], weight_init="glorot")
    with pytest.raises(ConfigurationError, match=r"model\.feedback_init: unknown value 'transposed'.*did you mean 'transpose'"):
        HierarchySpec.from_sizes([2, 2], feedback_init="transposed")
    with pytest.raises(ConfigurationError, match=r"model\.init_scale: must be > 0"):
        HierarchySpec.from_sizes([2, 2], init_scale=0)


def test_spec_is_immutable():
    spec = HierarchySpec.from_sizes([2, 2])
    with pytest.raises(AttributeError):
        spec.areas = ()
