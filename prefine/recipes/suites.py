"""The benchmark suites `prefine suite` runs, as data: one table per suite, one row per task.

A row says where the task's files lie in the suite's official layout, which prefine task reads
them and with which data flags, which metrics the suite reports, and the fine-tuning settings of
the suite's own baseline scripts. The recipe (`prefine.recipes.suite`) runs every row the same
way; nothing there knows a task by name.

Sources:
- GLUE (Wang et al. 2019): the folders `download_glue_data.py` writes (`glue_data/CoLA/train.tsv`,
  `dev.tsv`, `MNLI/dev_matched.tsv`, ...). Metrics as the GLUE leaderboard: MCC for CoLA, F1 and
  accuracy for MRPC and QQP, Pearson and Spearman for STS-B, matched and mismatched accuracy for
  MNLI, accuracy elsewhere. Settings: transformers' run_glue.py README (learning rate 2e-5,
  batch 32, max length 128, 3 epochs; 5 for MRPC and WNLI).
- KLUE v1.1 (Park et al. 2021): `klue_benchmark/` of the KLUE-benchmark/KLUE repository
  (`ynat-v1.1/ynat-v1.1_train.json`, `klue-sts-v1.1/klue-sts-v1.1_dev.json`, ...). Metrics as the
  KLUE paper defines them. Settings: KLUE-baseline's `run_all.sh` for klue/bert-base.

Learning rates are the scripts' rates for a BERT-base (hidden 768); the recipe scales them to the
model's width with the rule `prefine finetune` uses (`prefine.recipes.common.finetune_learning_rate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SuiteMetric:
    """One number the suite reports for a task."""

    key: str  # the key in the task's evaluation metrics (`metric_directions`)
    label: str  # how the table heads it
    split: str = ""  # which reported split it is scored on ("" = the task's first)


@dataclass(frozen=True)
class ReportSplit:
    """An official evaluation file, scored once with the checkpoint chosen on the carved dev split."""

    label: str  # "dev", "matched", "mismatched"
    paths: tuple[str, ...]  # where it lies under --data, first match wins
    hub_split: str = ""  # its split in the Hugging Face dataset


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: where its files are, how prefine reads them, what is reported, how it is fine-tuned."""

    name: str  # what --tasks calls it
    title: str  # what the table calls it
    task: str  # the prefine task that fine-tunes it
    train: tuple[str, ...]  # the training file under --data, first match wins
    reports: tuple[ReportSplit, ...]  # the official files reported on
    metrics: tuple[SuiteMetric, ...]  # the suite's metrics; the task's score is their mean
    select_on: str = ""  # the metric that picks the checkpoint on the carved dev split ("" = the task's default)
    data: dict[str, Any] = field(default_factory=dict)  # the task's data flags for the official files
    learning_rate: float = 2e-5  # the baseline script's peak rate at BERT-base width
    epochs: float = 3.0
    batch_size: int = 32
    hub: str = ""  # "dataset:config" on the Hugging Face Hub ("" = none that prefine's reader takes)
    hub_data: dict[str, Any] = field(default_factory=dict)  # data flags that differ for the Hub copy
    unsupported: str = ""  # why prefine cannot run it yet ("" = it can)


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    layout: str  # what --data must point at
    tasks: tuple[SuiteTask, ...]
    average: str  # how the suite average is formed, as the table footnote says it
    settings_source: str  # where the per-task fine-tuning settings come from


def _dev(*paths: str, hub_split: str = "validation") -> tuple[ReportSplit, ...]:
    return (ReportSplit("dev", paths, hub_split),)


ACCURACY = SuiteMetric("accuracy", "acc")

GLUE = Suite(
    name="glue",
    title="GLUE",
    layout="the folder download_glue_data.py writes (CoLA/, SST-2/, MRPC/, QQP/, STS-B/, MNLI/, QNLI/, RTE/, WNLI/)",
    average="GLUE score: the unweighted mean of one score per task, a task with two metrics contributing their mean "
    "(MNLI: matched and mismatched accuracy), as the GLUE leaderboard forms it",
    settings_source="transformers run_glue.py README: learning rate 2e-5 at BERT-base width, batch 32, max length 128, "
    "3 epochs (5 for MRPC and WNLI)",
    tasks=(
        SuiteTask(
            name="cola",
            title="CoLA",
            task="classification",
            train=("CoLA/train.tsv",),
            reports=_dev("CoLA/dev.tsv"),
            metrics=(SuiteMetric("mcc", "MCC"),),
            select_on="mcc",
            # CoLA's train.tsv and dev.tsv have no header line: source, label, original mark, sentence.
            data={
                "columns": "source,label,mark,sentence",
                "text_column": "sentence",
                "label_column": "label",
                "task_type": "classification",
            },
            hub="nyu-mll/glue:cola",
            hub_data={"columns": None},
        ),
        SuiteTask(
            name="sst2",
            title="SST-2",
            task="classification",
            train=("SST-2/train.tsv",),
            reports=_dev("SST-2/dev.tsv"),
            metrics=(ACCURACY,),
            data={"text_column": "sentence", "label_column": "label", "task_type": "classification"},
            hub="nyu-mll/glue:sst2",
        ),
        SuiteTask(
            name="mrpc",
            title="MRPC",
            task="classification",
            train=("MRPC/train.tsv",),
            reports=_dev("MRPC/dev.tsv"),
            metrics=(SuiteMetric("binary_f1", "F1"), ACCURACY),
            data={"text_column": "#1 String", "text_pair_column": "#2 String", "label_column": "Quality", "task_type": "classification"},
            epochs=5.0,
            # No Hub copy: its labels arrive as names (equivalent, not_equivalent), whose order would make F1 the
            # negative class's; the official files' 0/1 make class 1 the positive one.
        ),
        SuiteTask(
            name="qqp",
            title="QQP",
            task="classification",
            train=("QQP/train.tsv",),
            reports=_dev("QQP/dev.tsv"),
            metrics=(SuiteMetric("binary_f1", "F1"), ACCURACY),
            data={
                "text_column": "question1",
                "text_pair_column": "question2",
                "label_column": "is_duplicate",
                "task_type": "classification",
            },
            # No Hub copy, for MRPC's reason (duplicate, not_duplicate).
        ),
        SuiteTask(
            name="stsb",
            title="STS-B",
            task="classification",
            train=("STS-B/train.tsv",),
            reports=_dev("STS-B/dev.tsv"),
            metrics=(SuiteMetric("pearson", "Pearson"), SuiteMetric("spearman", "Spearman")),
            data={"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "score", "task_type": "regression"},
            hub="nyu-mll/glue:stsb",
            hub_data={"label_column": "label"},
        ),
        SuiteTask(
            name="mnli",
            title="MNLI",
            task="classification",
            train=("MNLI/train.tsv",),
            reports=(
                ReportSplit("matched", ("MNLI/dev_matched.tsv",), "validation_matched"),
                ReportSplit("mismatched", ("MNLI/dev_mismatched.tsv",), "validation_mismatched"),
            ),
            metrics=(SuiteMetric("accuracy", "m acc", "matched"), SuiteMetric("accuracy", "mm acc", "mismatched")),
            data={"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "gold_label", "task_type": "classification"},
            hub="nyu-mll/glue:mnli",
            hub_data={"text_column": "premise", "text_pair_column": "hypothesis", "label_column": "label"},
        ),
        SuiteTask(
            name="qnli",
            title="QNLI",
            task="classification",
            train=("QNLI/train.tsv",),
            reports=_dev("QNLI/dev.tsv"),
            metrics=(ACCURACY,),
            data={"text_column": "question", "text_pair_column": "sentence", "label_column": "label", "task_type": "classification"},
            hub="nyu-mll/glue:qnli",
        ),
        SuiteTask(
            name="rte",
            title="RTE",
            task="classification",
            train=("RTE/train.tsv",),
            reports=_dev("RTE/dev.tsv"),
            metrics=(ACCURACY,),
            data={"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "label", "task_type": "classification"},
            hub="nyu-mll/glue:rte",
        ),
        SuiteTask(
            name="wnli",
            title="WNLI",
            task="classification",
            train=("WNLI/train.tsv",),
            reports=_dev("WNLI/dev.tsv"),
            metrics=(ACCURACY,),
            data={"text_column": "sentence1", "text_pair_column": "sentence2", "label_column": "label", "task_type": "classification"},
            epochs=5.0,
            hub="nyu-mll/glue:wnli",
        ),
    ),
)


def _klue(folder: str, stem: str, split: str, suffix: str = "json") -> tuple[str, ...]:
    """A KLUE v1.1 file under klue_benchmark/, or under the repository root above it."""
    relative = f"{folder}/{stem}_{split}.{suffix}"
    return (relative, f"klue_benchmark/{relative}")


KLUE = Suite(
    name="klue",
    title="KLUE",
    layout="klue_benchmark/ of the KLUE-benchmark/KLUE repository (ynat-v1.1/, klue-sts-v1.1/, klue-nli-v1.1/, klue-ner-v1.1/, "
    "klue-re-v1.1/, klue-mrc-v1.1/), or the repository root above it",
    average="the unweighted mean of one score per task, a task with two metrics contributing their mean (the KLUE paper "
    "reports every task's metrics and defines no overall score; this is the GLUE rule, for a one-number summary)",
    settings_source="KLUE-baseline run_all.sh (klue/bert-base): learning rate 5e-5 (MRC 3e-5) at BERT-base width, batch 32 "
    "(MRC 16), max length 128 (RE 256, NER and MRC 510), epochs 3 to 5",
    tasks=(
        SuiteTask(
            name="ynat",
            title="YNAT",
            task="classification",
            train=_klue("ynat-v1.1", "ynat-v1.1", "train"),
            reports=_dev(*_klue("ynat-v1.1", "ynat-v1.1", "dev")),
            metrics=(SuiteMetric("macro_f1", "macro F1"),),
            select_on="macro_f1",  # KLUE-baseline's --metric_key
            data={"text_column": "title", "label_column": "label", "task_type": "classification"},
            learning_rate=5e-5,
            hub="klue:ynat",
        ),
        SuiteTask(
            name="sts",
            title="KLUE-STS",
            task="classification",
            train=_klue("klue-sts-v1.1", "klue-sts-v1.1", "train"),
            reports=_dev(*_klue("klue-sts-v1.1", "klue-sts-v1.1", "dev")),
            metrics=(SuiteMetric("pearson", "Pearson"), SuiteMetric("f1_at_threshold", "F1")),
            # The score is regressed on real-label; F1 counts a pair as similar at 3.0 or above, as KLUE does.
            data={
                "text_column": "sentence1",
                "text_pair_column": "sentence2",
                "label_column": "labels.real-label",
                "task_type": "regression",
                "binary_threshold": 3.0,
            },
            learning_rate=5e-5,
            epochs=4.0,
        ),
        SuiteTask(
            name="nli",
            title="KLUE-NLI",
            task="classification",
            train=_klue("klue-nli-v1.1", "klue-nli-v1.1", "train"),
            reports=_dev(*_klue("klue-nli-v1.1", "klue-nli-v1.1", "dev")),
            metrics=(ACCURACY,),
            data={"text_column": "premise", "text_pair_column": "hypothesis", "label_column": "gold_label", "task_type": "classification"},
            learning_rate=5e-5,
            epochs=5.0,
            hub="klue:nli",
            hub_data={"label_column": "label"},
        ),
        SuiteTask(
            name="ner",
            title="KLUE-NER",
            task="ner",
            train=_klue("klue-ner-v1.1", "klue-ner-v1.1", "train", "tsv"),
            reports=_dev(*_klue("klue-ner-v1.1", "klue-ner-v1.1", "dev", "tsv")),
            metrics=(SuiteMetric("entity_macro_f1", "entity F1"), SuiteMetric("character_macro_f1", "char F1")),
            data={"layout": "characters", "max_seq_length": 510},
            learning_rate=5e-5,
            epochs=3.0,
        ),
        SuiteTask(
            name="re",
            title="KLUE-RE",
            task="relation-extraction",
            train=_klue("klue-re-v1.1", "klue-re-v1.1", "train"),
            reports=_dev(*_klue("klue-re-v1.1", "klue-re-v1.1", "dev")),
            metrics=(SuiteMetric("micro_f1", "micro F1"), SuiteMetric("auprc", "AUPRC")),
            data={"max_seq_length": 256},
            learning_rate=5e-5,
            epochs=3.0,
            hub="klue:re",
        ),
        SuiteTask(
            name="dp",
            title="KLUE-DP",
            task="",
            train=_klue("klue-dp-v1.1", "klue-dp-v1.1", "train", "tsv"),
            reports=_dev(*_klue("klue-dp-v1.1", "klue-dp-v1.1", "dev", "tsv")),
            metrics=(SuiteMetric("uas", "UAS"), SuiteMetric("las", "LAS")),
            unsupported="dependency parsing needs a biaffine arc and label head over words, which no prefine task has yet",
        ),
        SuiteTask(
            name="mrc",
            title="KLUE-MRC",
            task="qa",
            train=_klue("klue-mrc-v1.1", "klue-mrc-v1.1", "train"),
            reports=_dev(*_klue("klue-mrc-v1.1", "klue-mrc-v1.1", "dev")),
            metrics=(SuiteMetric("exact_match", "EM"), SuiteMetric("rouge_w", "ROUGE-W")),
            data={"max_length": 510, "doc_stride": 128, "max_query_length": 64, "metric": "klue"},
            learning_rate=3e-5,
            epochs=5.0,
            batch_size=16,
        ),
        SuiteTask(
            name="wos",
            title="WoS",
            task="",
            train=_klue("wos-v1.1", "wos-v1.1", "train"),
            reports=_dev(*_klue("wos-v1.1", "wos-v1.1", "dev")),
            metrics=(SuiteMetric("joint_goal_accuracy", "JGA"), SuiteMetric("slot_micro_f1", "slot F1")),
            unsupported="dialogue state tracking generates slot values turn by turn (KLUE's baseline: TRADE); no prefine task does yet",
        ),
    ),
)

SUITES: dict[str, Suite] = {suite.name: suite for suite in (GLUE, KLUE)}
