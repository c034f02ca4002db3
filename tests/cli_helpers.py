"""Shared by the CLI tests: run `aoncim` in-process and check the one-line error contract."""
from click.testing import CliRunner

from aoncim.cli import main


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def one_error_line(result, match, code=1):
    """Exit `code`, exactly one line `aoncim: error: ...` containing `match`, no traceback."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("aoncim: error: "), result.output
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.output
