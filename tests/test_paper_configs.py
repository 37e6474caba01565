"""Every paper's config says each field's valid values once, where the field is declared (`param`'s range
or `choices`): `--help` shows them, a value outside them is refused in one line, and a value inside them
is not refused by a second, hand-written rule."""

import dataclasses
import importlib

import pytest

from common.lifecycle.config import ConfigError, help_text, make_config

PAPERS = ("cgan", "dcgan", "emotion_transfer", "resnet", "semi_supervised_gan", "speech_emotion", "unet", "vae",
          "wgan")
# Declared bounds that a rule joining two fields narrows: the boundary is refused on purpose.
JOINED = {("cgan", "momentum_saturate_epoch"): "must not come before momentum_start_epoch (1)",
          ("unet", "tile"): "a tile must halve evenly through the four poolings (16k + 188)"}


def _config(paper):
    module = importlib.import_module(f"papers.{paper}.config")
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == module.__name__]
    assert len(classes) == 1, classes
    return classes[0], module.PRESETS


def _numbers(value):
    items = value if isinstance(value, tuple) else (value,)
    return bool(items) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


def _edges(field):
    """The values at the edges of a field's declared range (an int field's nearest whole numbers)."""
    bounds, default = field.metadata["bounds"], field.default
    whole = isinstance(default[0] if isinstance(default, tuple) else default, int)
    step = 1 if whole else 1e-6
    edges = []
    if bounds["above"] is not None:
        edges.append(bounds["above"] + step)
    elif bounds["low"] is not None:
        edges.append(bounds["low"])
    if bounds["below"] is not None:
        edges.append(bounds["below"] - step)
    elif bounds["high"] is not None:
        edges.append(bounds["high"])
    return [(type(default[0])(e),) if isinstance(default, tuple) else type(default)(e) for e in edges]


@pytest.mark.parametrize("paper", PAPERS)
def test_the_edges_of_every_declared_range_are_taken(paper):
    """`--help` says "[int] ... >= 1"; a validate() that also asks for more than the declared range would make
    that line wrong. (Joined rules, listed above, are the exceptions.)"""
    cls, presets = _config(paper)
    refused = []
    for field in dataclasses.fields(cls):
        if (paper, field.name) in JOINED or not _numbers(field.default) or not field.metadata.get("bounds"):
            continue
        for value in _edges(field):
            try:
                make_config(cls, presets, **{field.name: value})
            except ConfigError as e:
                refused.append(f"--{field.name}={value}: {e}")
    assert not refused, refused


# String fields that take one of a few words: each declares them as choices (was a hand-written check each,
# which --help did not show).
WORDS = [("speech_emotion", "ravdess_intensity", "loud", "normal | strong"),
         ("speech_emotion", "utterance_segments", "some", "all | energetic"),
         ("wgan", "lr_decay", "maybe", "auto | true | false"),
         ("wgan", "critic_norm", "group", "auto | batch | layer | none")]


@pytest.mark.parametrize(("paper", "name", "wrong", "listed"), WORDS)
def test_a_field_of_a_few_words_lists_them_in_help_and_refuses_others_in_the_common_line(paper, name, wrong,
                                                                                          listed):
    cls, presets = _config(paper)
    with pytest.raises(ConfigError, match=rf"^--{name} must be one of .*, got '{wrong}'$"):
        make_config(cls, presets, **{name: wrong})
    assert f"--{name}=" in help_text(cls, presets) and f"[str: {listed}]" in help_text(cls, presets)


@pytest.mark.parametrize("grid", ["elm_c", "kelm_c", "kelm_gamma", "svm_c", "svm_gamma"])
def test_speech_emotion_refuses_an_empty_search_grid_when_the_config_is_made(grid):
    """An empty grid got as far as the first fold's grid search (old: only when every grid was empty)."""
    cls, presets = _config("speech_emotion")
    with pytest.raises(ConfigError, match=f"^--{grid}=: give at least 1 value, none repeated$"):
        make_config(cls, presets, **{grid: ()})
    with pytest.raises(ConfigError, match=f"^--{grid}=1.0,1.0: give at least 1 value, none repeated$"):
        make_config(cls, presets, **{grid: (1.0, 1.0)})
    assert make_config(cls, presets, **{grid: (1.0,)})
    with pytest.raises(ConfigError, match="^--emotions=happy: give at least 2 values, none repeated$"):
        make_config(cls, presets, emotions=("happy",))


def test_cgan_sigma_grid_is_a_grid_of_distinct_sigmas():
    """A repeated sigma was searched twice without a word; the empty grid had a hand-written line of its own."""
    cls, presets = _config("cgan")
    assert "--sigma_grid=" in help_text(cls, presets) and "1+ distinct" in help_text(cls, presets)
    for grid, shown in (((0.2, 0.2), "0.2,0.2"), ((), "")):
        with pytest.raises(ConfigError, match=f"^--sigma_grid={shown}: give at least 1 value, none repeated$"):
            make_config(cls, presets, sigma_grid=grid)
    assert make_config(cls, presets, sigma_grid=(0.2,)).sigma_grid == (0.2,)


def test_semi_supervised_gan_lr_decay_epochs_takes_only_its_declared_sentinel():
    """-1 is "the dataset's share of the epochs"; -3 was taken as -1 without a word."""
    cls, presets = _config("semi_supervised_gan")
    assert make_config(cls, presets, lr_decay_epochs=-1).lr_decay_epochs == 0  # MNIST: no decay
    with pytest.raises(ConfigError, match=r"--lr_decay_epochs=-3 is out of range: it must be >= -1"):
        make_config(cls, presets, lr_decay_epochs=-3)
    with pytest.raises(ConfigError, match="--lr_decay_epochs=400 is more than --epochs=300"):
        make_config(cls, presets, lr_decay_epochs=400)
