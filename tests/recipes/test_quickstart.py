"""The quickstart end to end, with a handful of steps: every stage runs and reports."""

from __future__ import annotations

import json

from prefine.cli import main


def test_quickstart_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out), "--pretrain-steps", "6", "--finetune-steps", "3", "--vocab-size", "1000",
                 "--num-threads", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "MLM accuracy on held-out documents: step 0:" in printed and "step 6:" in printed
    assert printed.count("    -> ") == 3  # the three fill-mask examples
    assert "| fraction | examples | pretrained accuracy | scratch accuracy | gain |" in printed
    rows = json.loads((out / "finetune" / "compare.json").read_text())
    assert [row["fraction"] for row in rows] == [0.1, 1.0]
    assert all(0.0 <= row["pretrained"] <= 1.0 and 0.0 <= row["scratch"] <= 1.0 for row in rows)
    assert (out / "finetune" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run replaces the first instead of refusing or mixing them.
    assert main(["quickstart", "--out", str(out), "--pretrain-steps", "2", "--finetune-steps", "2", "--vocab-size", "1000",
                 "--num-threads", "1", "--no-progress"]) == 0


def test_extra_sections_compare_the_entity_and_generation_tasks(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert main(["quickstart", "--out", str(out), "--pretrain-steps", "2", "--finetune-steps", "2", "--vocab-size", "1000",
                 "--extra-tasks", "ner,generation", "--extra-task-steps", "2", "--num-threads", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "entity F1: pre-trained" in printed and "ROUGE-L on held-out docstrings: pre-trained" in printed
    assert printed.count("reference:   ") == 3  # three held-out summaries shown beside both models' outputs
    rows = json.loads((out / "ner-finetune" / "compare.json").read_text())
    assert rows[0]["metric"] == "entity_f1" and rows[0]["fraction"] == 1.0
    assert (out / "generation-pretrained" / "predictions.json").exists() and (out / "generation-scratch" / "predictions.json").exists()
    assert main(["quickstart", "--out", str(tmp_path / "bad"), "--extra-tasks", "sentiment"]) == 2
    assert "--extra-tasks sentiment is not a built-in task comparison" in capsys.readouterr().err


def test_the_verdict_says_where_pretraining_helped():
    from prefine.recipes.quickstart import interpret_comparison

    def rows(*gains):
        return [{"gain": gain, "examples": examples} for gain, examples in zip(gains, (153, 1533))]

    assert interpret_comparison(rows(0.045, 0.038), "4000 pre-training steps", 0.175) == (
        "Pre-training helped at every data size (+4.5 accuracy points with 153 examples, +3.8 accuracy points with 1533 examples)."
    )
    mixed = interpret_comparison(rows(-0.010, 0.017), "3000 pre-training steps", 0.176)
    assert "held-out MLM accuracy 17.6%" in mixed
    assert "helped with 1533 labelled examples but not with 153 (-1.0 accuracy points with 153 examples" in mixed
    assert "helped with 153 labelled examples but not with 1533" in interpret_comparison(rows(0.045, -0.003), "3000 pre-training steps", 0.17)
    assert "did not beat random weights" in interpret_comparison(rows(-0.19, 0.0), "1000 pre-training steps", 0.131)
