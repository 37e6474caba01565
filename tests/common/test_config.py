from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import pytest

from common.lifecycle.config import (
    ConfigError,
    RunConfig,
    cli_main,
    config_hash,
    help_text,
    make_config,
    param,
    parse_args,
    recipe_changes,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    depth: int = param(20, "layers (§4.2)", low=1)
    rate: float = param(0.1, "learning rate (§4.2)", above=0)
    share: float = param(0.5, "a share", below=1)
    flag: bool = param(True, "a switch")
    steps: tuple[int, ...] = param((32000, 48000), "boundaries (§4.2)")
    name: str = param("a", "a name")


PRESETS = {"quick": {"depth": 8, "steps": (10, 20)}}


def test_defaults_are_the_paper_preset():
    preset, config = parse_args(ToyConfig, PRESETS, [])
    assert preset == "paper" and config == ToyConfig()


def test_overrides_are_converted_to_field_types():
    _, config = parse_args(ToyConfig, PRESETS, ["--depth=56", "--rate=1e-3", "--flag=false", "--steps=1,2,3",
                                                "--name=b", "--seed=7"])
    assert (config.depth, config.rate, config.flag, config.steps, config.name, config.seed) == \
        (56, 1e-3, False, (1, 2, 3), "b", 7)


def test_preset_then_overrides():
    preset, config = parse_args(ToyConfig, PRESETS, ["--preset=quick", "--depth=14"])
    assert preset == "quick-custom" and config.depth == 14 and config.steps == (10, 20)


def test_overrides_that_change_the_recipe_are_labelled_custom():
    assert parse_args(ToyConfig, PRESETS, ["--seed=3", "--results_dir=/x"])[0] == "paper"
    assert parse_args(ToyConfig, PRESETS, ["--rate=0.5"])[0] == "paper-custom"
    assert parse_args(ToyConfig, PRESETS, ["--preset=quick", "--steps=1,2"])[0] == "quick-custom"
    assert parse_args(ToyConfig, PRESETS, ["--preset=quick", "--steps=10,20"])[0] == "quick"


def test_recipe_changes_name_what_makes_a_run_custom():
    preset, config = parse_args(ToyConfig, PRESETS, ["--preset=quick", "--rate=0.5", "--seed=3", "--steps=1,2"])
    assert recipe_changes(config, PRESETS, preset) == {"rate": 0.5, "steps": (1, 2)}
    preset, config = parse_args(ToyConfig, PRESETS, ["--preset=quick", "--seed=3"])
    assert recipe_changes(config, PRESETS, preset) == {}
    assert recipe_changes(config, PRESETS, "benchmark") == {}


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        parse_args(ToyConfig, PRESETS, ["--detph=3"])
    assert "detph" in str(e.value) and "depth" in str(e.value) and "rate" in str(e.value)


@pytest.mark.parametrize("arg", ["--depth=twenty", "--rate=fast", "--flag=maybe", "--steps=1,x"])
def test_bad_value_is_refused(arg):
    with pytest.raises(ConfigError, match="is not a valid"):
        parse_args(ToyConfig, PRESETS, [arg])


def test_unknown_preset_and_malformed_argument():
    with pytest.raises(ConfigError, match="choose from: paper, quick"):
        parse_args(ToyConfig, PRESETS, ["--preset=fast"])
    with pytest.raises(ConfigError, match="expected --key=value"):
        parse_args(ToyConfig, PRESETS, ["depth=3"])
    with pytest.raises(ConfigError, match="--depth needs a value"):
        parse_args(ToyConfig, PRESETS, ["--depth"])


def test_key_space_value_is_read_as_key_equals_value():
    spaced = parse_args(ToyConfig, PRESETS, ["--preset", "quick", "--depth", "3", "--rate=0.5", "--flag", "false"])
    assert spaced == parse_args(ToyConfig, PRESETS, ["--preset=quick", "--depth=3", "--rate=0.5", "--flag=false"])


def test_config_is_frozen():
    with pytest.raises(FrozenInstanceError):
        ToyConfig().depth = 3


def test_help_shows_fields_defaults_comments_and_presets(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(ToyConfig, PRESETS, ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--depth=20" in out and "layers (§4.2)" in out and "--depth=8 --steps=10,20" in out
    assert help_text(ToyConfig, PRESETS) in out


def test_help_names_the_program_says_what_each_preset_reached_and_lists_the_papers_fields_first():
    from common import report
    from papers.resnet.config import PRESETS as RESNET_PRESETS
    from papers.resnet.config import ResNetConfig

    text = help_text(ResNetConfig, RESNET_PRESETS, "ResNets.")
    assert "usage: python papers/resnet/train.py [--preset NAME] [--key value ...]" in text
    meta = report.paper_meta("resnet")
    rows = report.summary_rows(report._runs_frame(report.results_lib.load_all(report.REPO / "results", "resnet"),
                                                  meta), meta)
    fast = next(r for r in rows if r["variant"] == "resnet20" and r["preset"].startswith("fast "))
    assert f"  fast             not the paper's recipe; resnet20: test error (%) {fast['ours']} over {fast['n']} runs" \
           in text
    # Its five runs ran on two machines: a time for each, not their mean beside the first machine's name.
    fast_line = next(line for line in text.splitlines() if line.startswith("  fast "))
    assert " min a run (CPU: AMD EPYC (2 cores)), " in fast_line
    assert fast_line.endswith(" min a run (CPU: Intel(R) Xeon(R) Processor (2 cores))")
    assert "  paper (default)  paper's recipe; " in text
    assert "  smoke            not the paper's recipe; checks " in text
    assert text.index("--depth=20") < text.index("where files go and how it runs:") < text.index("--data_dir=")


def test_cli_main_turns_config_errors_into_exit_code_2(capsys):
    assert cli_main(ToyConfig, PRESETS, lambda c, preset: 0, ["--nope=1"]) == 2
    assert "valid keys are" in capsys.readouterr().err


def test_hash_ignores_locations_but_not_computation():
    base = make_config(ToyConfig, PRESETS)
    assert config_hash(base) == config_hash(make_config(ToyConfig, PRESETS, results_dir="/elsewhere"))
    assert config_hash(base) != config_hash(make_config(ToyConfig, PRESETS, depth=8))


@pytest.mark.parametrize(("arg", "message"), [
    ("--rate=-0.1", "--rate=-0.1 is out of range: it must be > 0"), ("--rate=nan", "is not a valid float"),
    ("--rate=inf", "is not a valid float"), ("--depth=0", "--depth=0 is out of range: it must be >= 1"),
    ("--steps=10,-2", "--steps=10,-2 is out of range: it must be >= 0"), ("--share=1.0", "must be >= 0 and < 1")])
def test_values_out_of_their_declared_range_are_refused_at_parse_time(arg, message, capsys):
    with pytest.raises(ConfigError, match=message.replace("+", "\\+")):
        parse_args(ToyConfig, PRESETS, [arg])
    assert cli_main(ToyConfig, PRESETS, lambda c, preset: 0, [arg]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line


def test_mutable_default_is_refused():
    with pytest.raises(TypeError):
        param([1, 2], "lists are mutable")


def test_a_field_with_choices_refuses_any_other_value_in_one_line_and_lists_them_in_help():
    @dataclass(frozen=True)
    class Chosen(RunConfig):
        mode: str = param("a", "a mode", choices=("a", "b"))

    assert make_config(Chosen, {}, mode="b").mode == "b"
    with pytest.raises(ConfigError, match=r"^--mode must be one of a, b, got 'c'$"):
        make_config(Chosen, {}, mode="c")
    with pytest.raises(ConfigError, match="--jit_compile must be one of auto, true, false"):
        make_config(Chosen, {}, jit_compile="yes")
    assert "--mode=a  [str: a | b]  a mode" in help_text(Chosen, {})


def test_a_tuple_field_declared_distinct_needs_that_many_items_none_repeated():
    @dataclass(frozen=True)
    class Listed(RunConfig):
        sizes: tuple[int, ...] = param((48, 224), "sides to time", low=1, distinct=1)
        classes: tuple[str, ...] = param(("a", "b"), "classes", distinct=2)

    assert make_config(Listed, {}, sizes=(48,), classes=("b", "a")).sizes == (48,)
    for bad, message in (({"sizes": ()}, "--sizes=: give at least 1 value, none repeated"),
                         ({"sizes": (48, 48)}, "--sizes=48,48: give at least 1 value, none repeated"),
                         ({"classes": ("a",)}, "--classes=a: give at least 2 values, none repeated")):
        with pytest.raises(ConfigError, match=f"^{message}$"):
            make_config(Listed, {}, **bad)
    assert "--classes=a,b  [tuple, 2+ distinct]  classes" in help_text(Listed, {})


def test_renamed_fields_keep_the_hashes_of_runs_recorded_under_their_old_names_and_take_them_still():
    """Each paper's RENAMED: a config's hash is taken under the old names (so that a recorded run's rerun is
    found, and a relayed run resumes), and the old names still work on the command line and in `make_config`
    (a relayed run's command.json replays the command it was started with)."""
    import json

    from common.lifecycle.config import _current_names
    from papers.cgan.config import CGANConfig
    from papers.semi_supervised_gan.config import PRESETS as SSGAN_PRESETS
    from papers.semi_supervised_gan.config import SemiSupervisedGANConfig
    from papers.speech_emotion.config import PRESETS as SPEECH_PRESETS
    from papers.speech_emotion.config import SpeechEmotionConfig
    from papers.unet.config import PRESETS as UNET_PRESETS
    from papers.unet.config import UNetConfig
    from papers.wgan.config import PRESETS as WGAN_PRESETS
    from papers.wgan.config import WGANConfig

    # Hashes of runs recorded before the renames (hidden -> hidden_units, unlabeled_weight -> unlabelled_weight).
    assert config_hash(make_config(SpeechEmotionConfig, SPEECH_PRESETS, seed=0)) == "baa47c33"  # ravdess paper seed 0
    assert config_hash(make_config(SemiSupervisedGANConfig, SSGAN_PRESETS, "quick")) == "7d9912c9"  # MNIST quick
    # A CGAN record's stored config (eval_block) rebuilt under the new names has the record's hash.
    record = json.loads((REPO / "results/cgan/cgan-mnist_paper_seed0_20261130T112420Z.json").read_text())
    stored = {k: tuple(v) if isinstance(v, list) else v
              for k, v in _current_names(CGANConfig, record["config"]).items()}
    assert "eval_block" in record["config"] and config_hash(CGANConfig(**stored)) == record["config_hash"]
    # The paper presets' hashes before the renames (eval_batch -> eval_batch_size, adam_beta_* -> beta_*).
    assert config_hash(make_config(UNetConfig, UNET_PRESETS)) == "158f2f92"
    assert config_hash(make_config(WGANConfig, WGAN_PRESETS)) == "b9699a6d"

    _, old = parse_args(WGANConfig, WGAN_PRESETS, ["--adam_beta_1=0.5", "--adam_beta_2", "0.99"])
    assert (old.beta_1, old.beta_2) == (0.5, 0.99) and old == make_config(WGANConfig, WGAN_PRESETS, beta_1=0.5,
                                                                           beta_2=0.99)
    assert make_config(UNetConfig, UNET_PRESETS, eval_batch=4).eval_batch_size == 4
    assert "(formerly --adam_beta_1)" in help_text(WGANConfig, WGAN_PRESETS)


def test_fields_added_after_runs_were_recorded_keep_those_runs_hashes():
    """Each paper's HASHED_UNLESS_DEFAULT: the hashes of recorded and relayed runs stay (a run in flight is
    found by its hash: another hash would start it afresh), and setting such a field changes the hash."""
    from papers.emotion_transfer.config import PRESETS as EMOTION_PRESETS
    from papers.emotion_transfer.config import EmotionTransferConfig
    from papers.resnet.config import PRESETS as RESNET_PRESETS
    from papers.resnet.config import ResNetConfig
    from papers.semi_supervised_gan.config import PRESETS as SSGAN_PRESETS
    from papers.semi_supervised_gan.config import SemiSupervisedGANConfig

    # results/relay/resnet/resnet20-paper-seed{0,1,2}-<hash>.tar.gz
    assert [config_hash(make_config(ResNetConfig, RESNET_PRESETS, seed=s)) for s in (0, 1, 2)] == \
        ["e7b3f4ef", "416a304d", "2d460cc7"]
    assert config_hash(make_config(SemiSupervisedGANConfig, SSGAN_PRESETS, labelled_only=True, data_seed=2)) == \
        "651322e7"  # mnist-100labels-labelled-only_paper_seed0_20261201T210012Z
    # efficientnet_lite0-ckplus-scheme-d_paper_seed0_20261206T054502Z (its ImageNet weights' path is hashed)
    assert config_hash(make_config(EmotionTransferConfig, EMOTION_PRESETS, scheme="d", runs_dir="/work/runs")) == \
        "8b75d8cd"
    base = make_config(ResNetConfig, RESNET_PRESETS)
    for field, value in (("label_smoothing", 0.1), ("precision", "mixed_bfloat16"), ("sync_batchnorm", False)):
        assert config_hash(make_config(ResNetConfig, RESNET_PRESETS, **{field: value})) != config_hash(base), field
