"""The quickstart end to end, with a handful of steps: every stage runs and reports."""

from __future__ import annotations

import json

from prefine.cli import main


def test_quickstart_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert (
        main(
            [
                "quickstart",
                "--out",
                str(out),
                "--pretrain-steps",
                "6",
                "--finetune-steps",
                "3",
                "--vocab-size",
                "1000",
                "--num-threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "MLM accuracy on held-out documents: step 0:" in printed and "step 6:" in printed
    assert printed.count("    -> ") == 3  # the three fill-mask examples
    assert "| fraction | examples | pretrained accuracy | scratch accuracy | gain | 95% interval | verdict |" in printed
    rows = json.loads((out / "finetune" / "compare.json").read_text())
    assert [row["fraction"] for row in rows] == [0.1, 1.0]
    assert all(0.0 <= row["pretrained"] <= 1.0 and 0.0 <= row["scratch"] <= 1.0 for row in rows)
    assert (out / "finetune" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run replaces the first instead of refusing or mixing them.
    assert (
        main(
            [
                "quickstart",
                "--out",
                str(out),
                "--pretrain-steps",
                "2",
                "--finetune-steps",
                "2",
                "--vocab-size",
                "1000",
                "--num-threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )


def test_extra_sections_compare_the_entity_and_generation_tasks(tmp_path, capsys):
    out = tmp_path / "quickstart"
    assert (
        main(
            [
                "quickstart",
                "--out",
                str(out),
                "--pretrain-steps",
                "2",
                "--finetune-steps",
                "2",
                "--vocab-size",
                "1000",
                "--extra-tasks",
                "ner,generation",
                "--extra-task-steps",
                "2",
                "--num-threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "entity F1: pre-trained" in printed and "ROUGE-L on held-out docstrings: pre-trained" in printed
    assert printed.count("reference:   ") == 3  # three held-out summaries shown beside both models' outputs
    rows = json.loads((out / "ner-finetune" / "compare.json").read_text())
    assert rows[0]["metric"] == "entity_f1" and rows[0]["fraction"] == 1.0
    assert (out / "generation-pretrained" / "predictions.json").exists() and (out / "generation-scratch" / "predictions.json").exists()
    assert main(["quickstart", "--out", str(tmp_path / "bad"), "--extra-tasks", "sentiment"]) == 2
    assert "--extra-tasks sentiment is not a built-in task comparison" in capsys.readouterr().err


def test_the_verdict_words_each_gain_by_its_interval():
    from prefine.recipes.quickstart import interpret_comparison

    def row(examples, pretrained, scratch):
        from prefine.metrics.intervals import paired_gain

        gain = paired_gain(pretrained, scratch)
        return {
            "examples": examples,
            "gain": gain.mean,
            "gain_low": gain.low,
            "gain_high": gain.high,
            "verdict": gain.verdict,
            "seeds": [0, 1, 2],
        }

    clear = row(153, [0.70, 0.72, 0.71], [0.60, 0.61, 0.62])  # +10 points, every seed
    noisy = row(1533, [0.90, 0.88, 0.93], [0.89, 0.90, 0.89])  # +1 point inside the seed noise
    text = interpret_comparison([clear, noisy], "4000 pre-training steps", 0.175)
    assert "held-out MLM accuracy 17.5%" in text and "over 3 fine-tuning seeds" in text
    assert "helped with 153 labelled examples and made no clear difference with 1533 labelled examples" in text
    assert "+10.0 accuracy points with 153 examples, 95% interval" in text
    assert "Pre-train longer" in text
    hurt = row(153, [0.50, 0.51, 0.50], [0.60, 0.61, 0.62])
    assert "hurt with 153 labelled examples" in interpret_comparison([hurt], "1000 pre-training steps", 0.13)
    assert "helped" not in interpret_comparison([noisy], "1000 pre-training steps", 0.13)
    everywhere = interpret_comparison([clear, clear], "5000 pre-training steps", 0.2)
    assert "helped with 153 and 153 labelled examples" in everywhere and "Pre-train longer" not in everywhere
