"""The worked examples of the docs run as written: every ```python block of docs/byo-model.md, in
order, in one namespace, with smaller sizes, so the document cannot rot."""
import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Sizes of the byo-model example for a quick run: (the line in the doc, its replacement).
BYO_SMALL = (("N_TRAIN = 4096", "N_TRAIN = 384"), ("N_VAL = 512", "N_VAL = 96"), ("EPOCHS = 6", "EPOCHS = 1"))


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(), flags=re.S | re.M)


def test_byo_model_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks(DOCS / "byo-model.md")
    assert len(blocks) >= 6
    code = "\n".join(blocks)
    for line, small in BYO_SMALL:
        assert line in code, f"docs/byo-model.md no longer sets {line!r}: update BYO_SMALL"
        code = code.replace(line, small)
    assert "http" not in (DOCS / "byo-model.md").read_text()  # no links outside the repository
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: worker threads only contend on a shared machine
    ns = {"__name__": "byo_model_example"}
    try:
        exec(compile(code, "docs/byo-model.md", "exec"), ns)  # noqa: S102 -- the doc's own code
    finally:
        torch.set_num_threads(threads)
    # What the example promises to leave behind.
    assert (tmp_path / "bars.img").stat().st_size > 0 and (tmp_path / "bars_float.img").stat().st_size > 0
    assert ns["logits"].shape == (96, 4) and ns["day"].shape == (96, 4)
    assert len(ns["hwa_logs"]) == 1 and ns["hwa_logs"][0].phase == "HWA"


@pytest.mark.parametrize("doc", ["byo-model.md"])
def test_shell_commands_name_existing_options(doc):
    """The command lines of the doc use subcommands the CLI has."""
    from aoncim.cli import main

    for cmd in re.findall(r"^aoncim (\w[\w-]*)", (DOCS / doc).read_text(), flags=re.M):
        assert cmd in main.commands, cmd
