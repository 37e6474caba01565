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
