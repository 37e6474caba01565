"""The README's promises about commands, checked against the files that run them."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _quick_start():
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines()]


def test_quick_start_is_two_commands_and_ci_runs_them():
    install_and_run, test = _quick_start()
    ci = (REPO / ".ci" / "run").read_text()
    assert install_and_run.startswith("pip install -r requirements.txt -e .")
    assert "python -m pip install -r requirements.txt -e ." in ci
    assert test in ci.splitlines()


def test_every_paper_folder_names_its_deviations():
    for folder in (REPO / "papers").iterdir():
        if folder.is_dir() and (folder / "train.py").exists():
            text = (folder / "README.md").read_text()
            assert re.search(r"^## Deviations", text, re.M), f"{folder}/README.md has no Deviations section"


# A figure that claims a measurement of ours: a duration or a throughput.
MEASUREMENT = re.compile(r"\b\d[\d,.]*\s?(?:-|–)?\s?[\d,.]*\s?"
                         r"(?:min|minutes|hours|h|seconds|images/s|samples/s|tiles/s)\b"
                         r"|well under an hour|about an hour|\b\d[\d.]*x faster")
# Where such a figure may stand: next to the record it comes from (REPORT.md is generated from results/).
BACKED = re.compile(r"REPORT\.md|results/|record|\.json\b")
# Durations that are the papers' own statements, not our measurements.
PAPERS_OWN = ("10 hours on a Titan GPU", '"for 10 hours on a NVidia Titan')


def _paragraphs(text: str):
    """Paragraphs of a Markdown file or docstring: blocks between blank lines, a table row each."""
    for block in re.split(r"\n\s*\n", text):
        if block.lstrip().startswith("|"):
            yield from block.splitlines()
        else:
            yield block


def _hand_written_docs():
    readme = (REPO / "README.md").read_text()
    start, end = readme.index("<!-- results:start -->"), readme.index("<!-- results:end -->")
    yield REPO / "README.md", readme[:start] + readme[end:]  # the results table is generated
    for path in sorted([*(REPO / "papers").glob("*/README.md"), *(REPO / "docs").glob("*.md")]):
        yield path, path.read_text()
    for path in sorted([*(REPO / "papers").glob("*/*.py"), *(REPO / "common").rglob("*.py")]):
        yield path, path.read_text()


def test_every_measured_figure_in_the_docs_points_at_its_record():
    """A duration or throughput written by hand goes stale; one that stands beside the record it comes
    from (REPORT.md, a results file) can be checked against it."""
    unbacked = []
    for path, text in _hand_written_docs():
        for paragraph in _paragraphs(text):
            if any(own in paragraph for own in PAPERS_OWN):
                continue
            if MEASUREMENT.search(paragraph) and not BACKED.search(paragraph):
                unbacked.append(f"{path.relative_to(REPO)}: {MEASUREMENT.search(paragraph).group(0)!r} in "
                                f"{paragraph.strip()[:160]!r}")
    assert not unbacked, "figures that claim a measurement without naming their record:\n" + "\n".join(unbacked)


def test_each_command_report_missing_writes_makes_its_rows_variant():
    """`python -m common.report --missing` makes a row's command from paper.json (`variants`, or the
    `variant_fields` of a record of that variant, its repeat field last): run through the paper's own
    command-line parser, each must make the row's variant and preset, not a custom one."""
    import shlex

    from common import report
    from common.lifecycle.config import command_config

    lines = [line for line in report.missing() if not line.startswith("#")]
    assert lines, "no row lacks a run: the test has nothing to check"
    for line in lines:
        command, comment = line.split("  # ", 1)
        paper, variant, preset = comment.split(":", 1)[0].split(" ")
        label, config = command_config(paper, shlex.split(command)[2:])
        assert (config.variant, label) == (variant, preset), line


def test_each_tool_s_help_gives_its_whole_summary_and_examples(capsys):
    """`python -m common.relay --help` cut its summary at the docstring's first line ("... unpack it there,
    and"), as did the campaign's."""
    import importlib

    import pytest

    for name in ("relay", "campaign", "networks", "report"):
        tool = importlib.import_module(f"common.{name}")
        with pytest.raises(SystemExit):
            tool.main(["--help"])
        out = capsys.readouterr().out
        summary, examples = tool.__doc__.split("\n\n")[:2]
        assert out.startswith(f"usage: python -m common.{name}") and summary in out and examples in out, name


def test_a_run_prints_nothing_of_tensorflows_start_up_unless_asked():
    """TensorFlow's C++ start-up lines (absl's pre-initialisation note, the oneDNN note) come before any log
    level applies; common.tf_env keeps them out of a run's output unless the user sets TF_CPP_MIN_LOG_LEVEL."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    code = "import common.tf_env, keras; print(keras.backend.backend())"
    quiet = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
    assert (quiet.stdout, quiet.stderr) == ("tensorflow\n", "")
    loud = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"},
                          capture_output=True, text=True, timeout=300)
    assert "oneDNN" in loud.stderr


def test_every_dependency_pyproject_declares_is_pinned_in_requirements_txt_within_its_range():
    """pyproject.toml declares ranges (the library and its extras); requirements.txt pins the set that was tested
    (the README's first command): each declared package is pinned there, at a version its range accepts."""
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin = Requirement(line)
            pins[pin.name.lower()] = next(iter(pin.specifier)).version
    for req in declared:
        assert req.name.lower() in pins, f"{req.name} is declared in pyproject.toml but not pinned in requirements.txt"
        assert req.specifier.contains(pins[req.name.lower()]), f"{req.name}=={pins[req.name.lower()]} outside {req}"


def test_every_recipe_mutation_names_text_that_is_in_its_file():
    """`python -m tests.recipe` changes each number of MUTATIONS in a copy of the code and stops at the first
    whose text moved: checked here, so that moving code keeps the mutation check runnable."""
    from tests.recipe import MUTATIONS

    stale = [(path, old) for changes in MUTATIONS.values() for path, old, _, _ in changes
             if old not in (REPO / path).read_text()]
    assert not stale, f"update tests/recipe.py MUTATIONS: {stale}"


def test_the_modules_that_find_the_repository_find_its_root():
    """Moving a module into a package changes what its `__file__` parents are: git commands, the commit a
    record names and the report's code-change marks all run from this root."""
    from common import campaign, networks, relay, report
    from common.lifecycle import repro

    for root in (repro.REPO_ROOT, campaign.REPO, relay.REPO, report.REPO, networks.RESULTS.parent):
        assert (root / "pyproject.toml").exists() and (root / "papers").is_dir(), root
