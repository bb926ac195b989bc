"""Settings checks know where they are: a value checked inside ``located``
names the key path the user wrote, however deep the table sits."""

from pathlib import Path

import pytest

from cortexsim import ConfigurationError
from cortexsim.optim import Adam, make_optimizer
from cortexsim.rules import RULES, make_rule
from cortexsim.sim.probes import Probe
from cortexsim.study.plan import load_study
from cortexsim.validation import (
    check_choice, check_int, check_keys, check_number, invalid, locate, located, settings_keys,
)

MODEL = """
[model]
[[model.areas]]
name = "pixels"
size = 64
[[model.areas]]
name = "hidden"
size = 8
[[model.areas]]
name = "{top}"
size = {top_size}
activation = "linear"
{stochastic}
"""

SUPERVISED = """
[study]
name = "where"
seeds = [0]
""" + MODEL.format(top="labels", top_size=10, stochastic="") + """
[optimizer]
name = "adam"
lr = 0.01

[[rules]]
rule = "backprop"
[rules.optimizer]
lr = 0.02

[[rules]]
rule = "predictive_coding"
label = "pc"
[rules.inference]
steps = 5
"""

GENERATIVE = """
[study]
name = "where_vae"
seeds = [0]
""" + MODEL.format(top="latent", top_size=4, stochastic="stochastic = true") + """
[data]
name = "digits"
binarize = "dynamic"

[[rules]]
rule = "elbo"
label = "vae"
beta = 1.0

[[rules]]
rule = "elbo"
label = "iwae"
k = 3

[[rules]]
rule = "elbo"
label = "beta_vae"
beta = 4.0
"""


def mistake(tmp_path: Path, text: str, old: str, new: str) -> str:
    assert old in text
    path = tmp_path / "study.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigurationError) as info:
        load_study(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message[len(f"{path}: "):]


def test_the_unchanged_studies_are_valid(tmp_path):
    for name, text in (("a.toml", SUPERVISED), ("b.toml", GENERATIVE)):
        (tmp_path / name).write_text(text)
        assert load_study(tmp_path / name).rules


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("steps = 5", "steps = -1", "rules[1].inference.steps: expected a whole number >= 0, got -1"),
        ("steps = 5", "steps = 5\nstep_size = 0", "rules[1].inference.step_size: must be > 0, got 0"),
        ("steps = 5", 'steps = 5\ninit = "zeroes"', "rules[1].inference.init: unknown value 'zeroes'"),
        ("steps = 5", "stepz = 5", "rules[1].inference.stepz: unknown key"),
        ('label = "pc"', 'label = "pc"\nmode = "generativ"', "rules[1].mode: unknown value 'generativ'"),
        ('label = "pc"', 'label = "pc"\nloss = "mae"', "rules[1].loss: unknown loss 'mae'"),
        ('label = "pc"', 'label = "p/c"', "rules[1].label: expected a name without '/'"),
        ("lr = 0.02", "lr = -1", "rules[0].optimizer.lr: must be > 0, got -1"),
        ("lr = 0.02", "lr = 0.02\nbeta1 = 1.5", "rules[0].optimizer.beta1: must be < 1.0, got 1.5"),
        ("lr = 0.02", "lr = 0.02\nweight_decay = -1", "rules[0].optimizer.weight_decay: must be >= 0, got -1"),
        ("lr = 0.02", 'name = "sgd"\nlr = 0.02\nbeta1 = 0.5', "rules[0].optimizer.beta1: unknown key; allowed: name, lr, weight_decay"),
        ("lr = 0.02", 'name = "adma"', "rules[0].optimizer.name: unknown value 'adma'"),
        ("lr = 0.01", "lr = -1", "optimizer.lr: must be > 0, got -1"),
        ("lr = 0.01", "lr = 0.01\neps = 0", "optimizer.eps: must be > 0, got 0"),
    ],
)
def test_a_supervised_study_names_the_full_key_path(tmp_path, old, new, expected):
    assert mistake(tmp_path, SUPERVISED, old, new).startswith(expected)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("beta = 1.0", "beta = -1", "rules[0].beta: must be >= 0, got -1"),
        ("beta = 4.0", "beta = -1", "rules[2].beta: must be >= 0, got -1"),
        ("beta = 4.0", 'beta = "big"', "rules[2].beta: expected a number, got 'big'"),
        ("k = 3", "k = 0", "rules[1].k: expected a whole number >= 1, got 0"),
        ("k = 3", 'k = 3\nkl = "analytic"', "rules[1].kl: the importance-weighted bound"),
    ],
)
def test_a_generative_study_names_the_full_key_path(tmp_path, old, new, expected):
    assert mistake(tmp_path, GENERATIVE, old, new).startswith(expected)


def test_a_misspelled_key_suggests_the_right_one(tmp_path):
    message = mistake(tmp_path, GENERATIVE, "beta = 4.0", "bta = 4.0")
    assert message.startswith("rules[2].bta: unknown key; allowed: rule, label, optimizer, beta, warmup")
    assert message.endswith("(did you mean 'beta'?)")
    message = mistake(tmp_path, SUPERVISED, "lr = 0.02", "lrr = 0.02")
    assert message.startswith("rules[0].optimizer.lrr: unknown key") and "(did you mean 'lr'?)" in message


def test_without_a_location_messages_are_as_the_code_wrote_them():
    with pytest.raises(ConfigurationError, match=r"^rule\.beta: must be >= 0, got -1$"):
        make_rule("elbo", beta=-1)
    with pytest.raises(ConfigurationError, match=r"^inference\.steps: expected a whole number >= 0"):
        make_rule("predictive_coding", inference={"steps": -1})
    with pytest.raises(ConfigurationError, match=r"^optimizer\.lr: must be > 0, got -1$"):
        Adam(lr=-1)
    with pytest.raises(ConfigurationError, match=r"^optimizer\.name: unknown optimizer 'adma'.*did you mean 'adam'"):
        make_optimizer("adma")
    with pytest.raises(ConfigurationError, match=r"^probe\.every: expected a whole number >= 1, got 0$"):
        Probe.from_dict({"quantity": "energy", "every": 0})
    with pytest.raises(ConfigurationError, match=r"^probes\[3\]\.quantity: unknown value 'enrgy'"):
        Probe.from_dict({"quantity": "enrgy"}, "probes[3]")


def test_located_replaces_the_owner_and_appends_everything_else():
    assert locate("rule.beta") == "rule.beta"
    with located("rules[2]", owner="rule") as path:
        assert path == "rules[2]"
        assert locate("rule.beta") == "rules[2].beta"
        assert locate("rule") == "rules[2]"
        assert locate("inference.steps") == "rules[2].inference.steps"
        assert locate("rules.beta") == "rules[2].rules.beta"  # only the whole first name is the owner
    with located("schedule"):  # no owner: every path is appended
        assert locate("rule.beta") == "schedule.rule.beta"
    assert locate("rule.beta") == "rule.beta"


def test_located_nests_and_unwinds():
    with located("rules[1]", owner="rule"):
        with located("optimizer", owner="optimizer") as path:
            assert path == "rules[1].optimizer"
            assert locate("optimizer.lr") == "rules[1].optimizer.lr"
            assert locate("rule.beta") == "rules[1].optimizer.rule.beta"  # the inner owner rules
        assert locate("optimizer.lr") == "rules[1].optimizer.lr"  # appended: not the rule's owner name
        assert locate("rule.beta") == "rules[1].beta"
        with located("inference") as path:
            assert path == "rules[1].inference"
            assert locate("steps") == "rules[1].inference.steps"
    assert locate("optimizer.lr") == "optimizer.lr"


def test_located_unwinds_when_a_check_fails():
    with pytest.raises(ConfigurationError, match=r"^a\[0\]\.x: must be > 0"):
        with located("a[0]", owner="thing"):
            check_number(0, "thing.x", positive=True)
    assert locate("thing.x") == "thing.x"


def test_every_check_composes_its_message_from_the_location():
    with located("outer[1]", owner="owner"):
        with pytest.raises(ConfigurationError, match=r"^outer\[1\]\.n: expected a whole number >= 2, got 1$"):
            check_int(1, "owner.n", minimum=2)
        with pytest.raises(ConfigurationError, match=r"^outer\[1\]\.kind: unknown value 'b'.*did you mean 'bb'"):
            check_choice("b", ("bb", "zz"), "owner.kind")
        with pytest.raises(ConfigurationError, match=r"^outer\[1\]\.sub\.stepz: unknown key; allowed: steps.*did you mean 'steps'"):
            check_keys({"stepz": 1}, ("steps",), "sub")
        with pytest.raises(ConfigurationError, match=r"^outer\[1\]: expected a table of settings"):
            check_keys(3, ("steps",), "owner")
        with pytest.raises(ConfigurationError, match=r"^outer\[1\]\.y: reason$"):
            raise invalid("owner.y", "reason")


def test_errors_raised_by_hand_are_located_once_on_the_way_out():
    with pytest.raises(ConfigurationError, match=r"^study\.rules\[4\]\.beta: must be >= 0$"):
        with located("study"):
            with located("rules[4]", owner="rule"):
                raise ConfigurationError("rule.beta: must be >= 0")
    with pytest.raises(ConfigurationError, match=r"^rules\[4\]: clamps the top area; pass y$"):
        with located("rules[4]", owner="rule"):
            raise ConfigurationError("clamps the top area; pass y")
    # a checked error is not located twice by the enclosing blocks
    with pytest.raises(ConfigurationError, match=r"^rules\[4\]\.inference\.steps: expected"):
        with located("rules[4]", owner="rule"):
            with located("inference"):
                check_int(-1, "steps")


def test_settings_keys_reads_a_signature():
    def run(hierarchy, rule, *, seed, data=None, area="hidden", orientations=12, **extra):
        return None

    assert settings_keys(run, keyword_only=True, exclude=("seed", "data")) == ("area", "orientations")
    assert settings_keys(RULES["elbo"]) == ("beta", "warmup", "likelihood", "samples", "k", "posterior", "kl", "seed")
    assert settings_keys(RULES["predictive_coding"]) == ("mode", "loss", "inference", "learn_recognition")
