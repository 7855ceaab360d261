"""The `prefine` command line's error handling."""

import pytest

from prefine.cli import main


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["pretrain", "--embedding-init", "glove"], "prefine pretrain: error: argument --embedding-init: invalid choice: 'glove'"),
        (["finetune", "--epochs", "x"], "prefine finetune: error: argument --epochs: invalid float value: 'x'"),
        (["pretrian"], "prefine: error: argument COMMAND: invalid choice: 'pretrian'"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_the_help(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(named) and captured.err.rstrip().endswith("--help)")
