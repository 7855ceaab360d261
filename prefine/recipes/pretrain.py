"""`prefine pretrain`: raw corpus -> tokenizer -> token shards -> a pre-training run of any registered objective.

A thin recipe: each stage lives in its own package, and everything that differs between
objectives (data layout, model, losses, metrics, checkpoint contents, --init, flags) is declared by
the objective (`prefine.objectives`), which this module never names. It only wires the stages'
configs to flags, decides where the tokenizer and weights come from (fresh, --tokenizer, --init,
--resume), lets `pretrain_budget` choose the model size and vocabulary under `--preset auto`
(the default with --max-time), and records the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prefine.checkpoint import TOKENIZER_DIR, is_run_dir, latest_checkpoint, read_run, write_run
from prefine.config import add_dataclass_arguments, explicit_overrides, from_args, from_dict, option
from prefine.corpus import CorpusConfig, CorpusSentences, check_corpus, corpus_fingerprint, iter_documents, iter_sentences
from prefine.errors import PrefineError
from prefine.model import PRESETS, BertConfig, count_parameters, preset_config
from prefine.model.bert import apply_mimetic_init
from prefine.objectives import CHECKPOINT_OBJECTIVE_KEY, DEFAULT_OBJECTIVE, PretrainingObjective, all_objectives, get_objective
from prefine.objectives.interface import objective_flag_config
from prefine.pretraining_data import (
    PretrainingBatches,
    PretrainingDataConfig,
    TokenShards,
    cached_token_shards,
    sequence_length_warning,
)
from prefine.pretraining_data.cooccurrence import cooccurrence_vectors
from prefine.recipes.common import (
    InitSource,
    check_resume_overrides,
    default_cache_dir,
    open_registry,
    parent_run_id,
    resolve_init,
    run_record,
)
from prefine.recipes.pretrain_budget import (
    AUTO_PRESET,
    choice_record,
    choose_preset,
    choose_vocab_size,
    count_words,
    measure_tokens_per_second,
    presets_worth_measuring,
)
from prefine.registry import RunHandle, default_registry_path, recorded_run
from prefine.tokenizer import TokenizerConfig, load_tokenizer, morpheme_analyser, save_tokenizer, tokenizer_fingerprint, train_tokenizer
from prefine.training import RESUMABLE_OVERRIDES, TrainingConfig, TrainingResult, init_distributed, train
from prefine.training.config import with_time_budget
from prefine.training.distributed import DistributedContext, broadcast_from_main, check_batch_split, wait_for_main

EMBEDDING_INITS = ("random", "cooccurrence")


@dataclass
class PretrainRunConfig:
    out: str = option("", "run folder to create (e.g. runs/ko-mini)")
    resume: str = option("", "continue the run in this folder exactly where it stopped")
    preset: str = option(
        AUTO_PRESET,
        "model size: tiny, mini, small, medium, base or large; auto (the default) picks, under --max-time, the largest preset "
        "this machine can train on enough tokens in the budget and a vocabulary sized to the corpus (unless --vocab-size or "
        "--tokenizer says), and prints why; without --max-time auto means mini",
    )
    init: str = option(
        "", "start from these weights instead of random ones (continued pre-training): a prefine run or a Hugging Face BERT folder/name"
    )
    tokenizer: str = option("", "reuse the tokenizer in this folder instead of training one on the corpus")
    cache_dir: str = option("", "where tokenized corpora are cached (default: $PREFINE_CACHE or ~/.cache/prefine)")
    registry: str = option("", "run registry database (default: registry.sqlite beside the run folder, or $PREFINE_REGISTRY)")
    name: str = option("", "name of the run in the registry (default: the run folder's name)")
    frequency_bias: bool = option(
        True,
        "start a new model's output biases from the corpus, as its objective defines them (a vocabulary bias at the log word "
        "frequencies, a replaced-token bias at the log-odds of a replacement), so training does not bend the encoder's states "
        "to learn them",
    )
    mimetic_init: bool = option(
        False,
        "start a new model's attention heads with their query-key product near the identity (mimetic init) and its position "
        "embeddings as sinusoids: it raised held-out masked-LM accuracy on the built-in corpus in 45 minutes, but those weights "
        "fine-tuned no better there, and worse on SST-2 (docs/pretraining-defaults.md)",
    )
    embedding_init: str = option(
        "random",
        "how a new model's word-piece embeddings start: random (BERT's), or cooccurrence (vectors from the corpus's "
        "co-occurrence counts, PPMI and a truncated SVD, in one pass over the text; the seconds it takes come off --max-time)",
        choices=EMBEDDING_INITS,
    )


# What a plain `prefine pretrain` does when no flag says otherwise. Budgets of minutes to hours on a
# CPU end long before BERT's schedule would: the peak rate is cramming's budget recipe (1e-3 with
# warm-up, no dropout), which in 5 minutes reached a higher held-out MLM accuracy than BERT's 2019
# recipe (5e-4, dropout 0.1; docs/pretraining-defaults.md, its MLM column in benchmarks/README.md).
# Five checkpoints are kept so `prefine compare --checkpoints all` can draw accuracy against
# pre-training time.
PRETRAIN_TRAINING_DEFAULTS = TrainingConfig(
    max_steps=10_000,
    batch_size=32,
    learning_rate=1e-3,
    warmup_ratio=0.06,
    eval_every=500,
    save_every=1000,
    keep_last=5,
    log_every=10,
    eval_at_start=True,
)


def pretraining_defaults(objective: str) -> TrainingConfig:
    """What a plain `prefine pretrain --objective OBJECTIVE` trains with when no flag says otherwise."""
    learning_rate = get_objective(objective).learning_rate
    if learning_rate is not None:
        return dataclasses.replace(PRETRAIN_TRAINING_DEFAULTS, learning_rate=learning_rate)
    return PRETRAIN_TRAINING_DEFAULTS


# The objective a plain `prefine pretrain` trains (prefine.objectives.interface.DEFAULT_OBJECTIVE says why).
PRETRAIN_DATA_DEFAULTS = PretrainingDataConfig(objective=DEFAULT_OBJECTIVE)
# Dropout regularises models trained for many epochs; a CPU budget of minutes to hours sees each
# text a few times at most, and there dropout only slows learning (cramming). Model flags
# (--hidden-dropout-prob ...) override these; fine-tuning restores BERT's 0.1 (finetune --dropout).
# The MLM head gets a vocabulary matrix of its own: tied to the input embeddings, the early
# softmax gradient drags every rare word's embedding into one shared direction, and those
# embeddings cost fine-tuning on SST-2 (docs/pretraining-defaults.md, "The MLM head: untied").
# An objective may adjust these for its model (`PretrainingObjective.new_model_settings`).
PRETRAIN_MODEL_DEFAULTS = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "tie_word_embeddings": False}
TOKENIZER_DEFAULTS = TokenizerConfig()
CORPUS_FLAGS = {"paths": "corpus"}
# The vocabulary comes from the tokenizer and the segment/pad layout from BERT itself; a narrower
# embedding (with its projection) comes only from an imported ELECTRA-Small-style --init.
MODEL_FIELDS_NOT_OVERRIDABLE = ("vocab_size", "type_vocab_size", "pad_token_id", "embedding_size")


def add_command(subparsers) -> None:
    choices = ", ".join(objective.name for objective in all_objectives())
    parser = subparsers.add_parser(
        "pretrain",
        help=f"pre-train a BERT encoder on a raw text corpus (--objective {choices}; default {PRETRAIN_DATA_DEFAULTS.objective})",
        description="Pre-train a BERT encoder from a raw corpus: trains a WordPiece tokenizer, tokenizes into cached "
        f"memory-mapped shards, and trains with the objective --objective names ({choices}).",
    )
    add_dataclass_arguments(parser.add_argument_group("run"), PretrainRunConfig)
    add_dataclass_arguments(parser.add_argument_group("corpus"), CorpusConfig, flags=CORPUS_FLAGS)
    add_dataclass_arguments(parser.add_argument_group("tokenizer (when training one)"), TokenizerConfig, defaults=TOKENIZER_DEFAULTS)
    add_dataclass_arguments(
        parser.add_argument_group(
            "model (each flag overrides the preset's value; pre-training runs without dropout unless these say otherwise)"
        ),
        BertConfig,
        skip=MODEL_FIELDS_NOT_OVERRIDABLE,
        show_defaults=False,
    )
    data_group = parser.add_argument_group("pre-training data")
    add_dataclass_arguments(data_group, objective_flag_config(PRETRAIN_DATA_DEFAULTS.objective))
    add_dataclass_arguments(data_group, PretrainingDataConfig, defaults=PRETRAIN_DATA_DEFAULTS)
    add_objective_arguments(parser)
    add_dataclass_arguments(parser.add_argument_group("training"), TrainingConfig, defaults=PRETRAIN_TRAINING_DEFAULTS)
    parser.set_defaults(func=run_from_args)


def add_objective_arguments(parser: argparse.ArgumentParser) -> None:
    """One group of flags per objective that has settings of its own; a field two objectives share becomes one flag."""
    seen: set[str] = set()
    for objective in all_objectives():
        if objective.settings_config is None:
            continue
        group = parser.add_argument_group(f"{objective.name} objective (with --objective {objective.name})")
        add_dataclass_arguments(group, objective.settings_config, skip=tuple(seen))
        seen.update(field.name for field in dataclasses.fields(objective.settings_config))


@dataclass
class PretrainSetup:
    run: PretrainRunConfig
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    data: PretrainingDataConfig
    training: TrainingConfig
    model_overrides: dict = dataclasses.field(default_factory=dict)  # BertConfig fields that replace the preset's
    # The settings_config instance of the objective data.objective names; None: its defaults.
    objective_settings: Any = None
    # --preset auto under --max-time without --vocab-size/--tokenizer: size the vocabulary to the corpus.
    vocabulary_from_budget: bool = False


def resolved_settings(objective: PretrainingObjective, given: Any) -> Any:
    """The objective's settings: `given`, or its defaults when None; None for an objective without settings."""
    if objective.settings_config is None:
        return None
    if given is None:
        return objective.settings_config()
    if not isinstance(given, objective.settings_config):
        raise PrefineError(f"--objective {objective.name} takes {objective.settings_config.__name__} settings, not {type(given).__name__}")
    return given


def _reject_foreign_settings(args: argparse.Namespace, objective: PretrainingObjective) -> None:
    """A flag only another objective reads would be silently ignored; say so instead."""
    own = {field.name for field in dataclasses.fields(objective.settings_config)} if objective.settings_config else set()
    for other in all_objectives():
        if other.settings_config is None or other is objective:
            continue
        foreign = [name for name in explicit_overrides(args, other.settings_config) if name not in own]
        if foreign:
            flag = "--" + foreign[0].replace("_", "-")
            raise PrefineError(f"{flag} applies to --objective {other.name} only; add --objective {other.name} or drop the flag")


def _settings_from_args(args: argparse.Namespace, objective: PretrainingObjective) -> Any:
    """The chosen objective's settings from its flags (None for an objective without settings)."""
    _reject_foreign_settings(args, objective)
    if objective.settings_config is None:
        return None
    return objective.settings_config(**explicit_overrides(args, objective.settings_config))


def _model_overrides(args: argparse.Namespace) -> dict:
    # --vocab-size belongs to the tokenizer group (the model takes the trained vocabulary's size).
    overrides = explicit_overrides(args, BertConfig)
    return {key: value for key, value in overrides.items() if key not in MODEL_FIELDS_NOT_OVERRIDABLE}


def new_model_settings(overrides: dict, data: PretrainingDataConfig) -> dict:
    """The preset's replacements for a new model: pre-training's defaults (as the objective adjusts them), then the user's flags."""
    return get_objective(data.objective).new_model_settings(PRETRAIN_MODEL_DEFAULTS, overrides)


def setup_from_args(args: argparse.Namespace) -> PretrainSetup:
    run = from_args(PretrainRunConfig, args)
    if run.resume:
        return _resumed_setup(run, args)
    if not run.out:
        raise PrefineError("pass --out FOLDER for the new run (or --resume FOLDER to continue one)")
    if is_run_dir(Path(run.out)):
        raise PrefineError(f"{run.out} already holds a run; continue it with --resume {run.out} or choose another --out")
    if run.preset not in PRESETS and run.preset != AUTO_PRESET and not run.init:
        raise PrefineError(f"unknown preset '{run.preset}'; choose one of auto, {', '.join(PRESETS)}")
    if run.init and run.mimetic_init:
        raise PrefineError(f"--mimetic-init sets a new model's starting weights; --init {run.init} brings its own, so drop one of them")
    if run.init and run.embedding_init != "random":
        raise PrefineError(
            f"--embedding-init {run.embedding_init} sets a new model's starting embeddings; --init {run.init} brings its own, "
            "so drop one of them"
        )
    data = from_args(PretrainingDataConfig, args, base=PRETRAIN_DATA_DEFAULTS)
    objective = get_objective(data.objective)
    training = with_time_budget(
        from_args(TrainingConfig, args, base=pretraining_defaults(data.objective)), explicit_steps=args.max_steps is not None
    )
    settings = _settings_from_args(args, objective)
    corpus = from_args(CorpusConfig, args)
    vocabulary_from_budget = False
    if run.preset == AUTO_PRESET and not run.init:
        if training.max_time_seconds is None:
            # Without a budget there is nothing to size against: the preset prefine always defaulted to.
            run = dataclasses.replace(run, preset="mini")
        else:
            shape_flags = [name for name in _model_overrides(args) if name in PRESETS["tiny"]]
            if shape_flags:
                flag = "--" + shape_flags[0].replace("_", "-")
                raise PrefineError(f"{flag} shapes a named preset; add --preset tiny/mini/... (--preset auto chooses the whole shape)")
            vocabulary_from_budget = not run.tokenizer and "vocab_size" not in explicit_overrides(args, TokenizerConfig)
    model_overrides = _model_overrides(args) if run.init else new_model_settings(_model_overrides(args), data)
    if not run.init:
        # The model is built only after the tokenizer is trained; a shape no model can have
        # (--num-hidden-layers 0) is refused here instead, before any work. Under auto the shape
        # flags were refused above, so any preset checks what is left.
        preset_config(run.preset if run.preset in PRESETS else "tiny", **model_overrides)
    check_new_run(run, corpus)
    return PretrainSetup(
        run=run,
        corpus=corpus,
        tokenizer=from_args(TokenizerConfig, args, base=TOKENIZER_DEFAULTS),
        data=data,
        training=training,
        # --init brings its own architecture; the defaults shape only a new model.
        model_overrides=model_overrides,
        objective_settings=settings,
        vocabulary_from_budget=vocabulary_from_budget,
    )


def check_writable_folder(folder: Path, flag: str) -> None:
    """A PrefineError unless `folder` is (or can be created as) a folder this process can write to."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise PrefineError(f"{flag} {folder}: {existing} is a file, not a folder; choose another path")
    # A probe file rather than os.access: root passes access checks on read-only mounts and /proc.
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".prefine-probe-", dir=existing)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise PrefineError(f"{flag} {folder}: cannot write in {existing} ({error.strerror}); choose a folder you can write to") from None


def check_new_run(run: PretrainRunConfig, corpus: CorpusConfig) -> None:
    """Everything a new run needs from outside, checked before the tokenizer trains or anything is written.

    Flags and presets are checked while parsing; here the paths: the output, cache and registry
    folders, a reused tokenizer, and the corpus (files, binary or not, format, text column,
    encoding of its first lines, any text at all), which is read last because it costs most.
    """
    check_writable_folder(Path(run.out), "--out")
    check_writable_folder(Path(run.cache_dir) if run.cache_dir else default_cache_dir(), "--cache-dir (or $PREFINE_CACHE)")
    registry = Path(run.registry) if run.registry else default_registry_path(Path(run.out))
    check_writable_folder(registry.parent, "--registry")
    if registry.is_dir():
        raise PrefineError(f"--registry {registry} is a folder; pass a file path such as {registry / 'registry.sqlite'}")
    if run.tokenizer:
        load_tokenizer(Path(run.tokenizer))
    check_corpus(corpus)


def _resumed_setup(run: PretrainRunConfig, args: argparse.Namespace) -> PretrainSetup:
    run_dir = Path(run.resume)
    saved = read_run(run_dir)
    if saved.get("kind") != "pretrain":
        raise PrefineError(f"{run_dir} is a {saved.get('kind')} run, not a pre-training run; resume it with its own command")
    saved_run = from_dict(PretrainRunConfig, saved["run"], str(run_dir / "run.json"))
    requested_run = explicit_overrides(args, PretrainRunConfig)
    requested_run.pop("resume")
    check_resume_overrides(dataclasses.asdict(saved_run), requested_run, frozenset({"cache_dir", "registry", "out"}), "the run")
    for group, cls, allowed in (
        ("corpus", CorpusConfig, frozenset()),
        ("tokenizer", TokenizerConfig, frozenset()),
        ("data", PretrainingDataConfig, frozenset()),
        ("training", TrainingConfig, RESUMABLE_OVERRIDES),
    ):
        check_resume_overrides(saved[group], explicit_overrides(args, cls), allowed, f"the {group}")
    check_resume_overrides(saved["model"], _model_overrides(args), frozenset(), "the model")
    data = from_dict(PretrainingDataConfig, saved["data"], "data")
    objective = get_objective(data.objective)
    _reject_foreign_settings(args, objective)
    settings: Any = None
    if objective.settings_config is not None:
        saved_settings = objective.saved_settings(saved)
        requested_settings = explicit_overrides(args, objective.settings_config)
        check_resume_overrides(saved_settings, requested_settings, frozenset(), f"the {objective.name} objective")
        settings = from_dict(objective.settings_config, saved_settings, objective.name)
    training = dataclasses.replace(
        from_dict(TrainingConfig, saved["training"], "training"),
        **{key: value for key, value in explicit_overrides(args, TrainingConfig).items() if key in RESUMABLE_OVERRIDES},
    )
    if args.max_time is not None:
        # A new --max-time on resume replaces the budget; without --max-steps it is the only limit.
        training = with_time_budget(training, explicit_steps=args.max_steps is not None)
    saved_run = dataclasses.replace(
        saved_run, resume=str(run_dir), out=str(run_dir), **{k: v for k, v in requested_run.items() if k != "out"}
    )
    return PretrainSetup(
        run=saved_run,
        corpus=from_dict(CorpusConfig, saved["corpus"], "corpus"),
        tokenizer=from_dict(TokenizerConfig, saved["tokenizer"], "tokenizer"),
        data=data,
        training=training,
        model_overrides=saved.get("model_overrides", {}),
        objective_settings=settings,
    )


def run_from_args(args: argparse.Namespace) -> int:
    result = run_pretraining(setup_from_args(args))
    return 0 if result is not None else 1


def _prepare_tokenizer(setup: PretrainSetup, run_dir: Path, init: InitSource | None, resuming: bool):
    tokenizer_dir = run_dir / TOKENIZER_DIR
    if resuming:
        return load_tokenizer(tokenizer_dir)
    if init is not None or setup.run.tokenizer:
        tokenizer = init.tokenizer if init is not None else load_tokenizer(Path(setup.run.tokenizer))
        source = "--init" if init is not None else "--tokenizer"
        if setup.tokenizer.morphemes != "none" and morpheme_analyser(tokenizer) != setup.tokenizer.morphemes:
            # A reused tokenizer keeps its own pieces; cutting morphemes now would encode differently from its vocabulary.
            raise PrefineError(
                f"--morphemes {setup.tokenizer.morphemes} applies to a tokenizer prefine trains, and the {source} tokenizer does not "
                f"cut morphemes; drop --morphemes to keep that tokenizer, or drop {source} to train one"
            )
        print(f"tokenizer: from {init.description}" if init is not None else f"tokenizer: reusing {setup.run.tokenizer}")
    else:
        morphemes = f", Korean morphemes cut by {setup.tokenizer.morphemes}" if setup.tokenizer.morphemes != "none" else ""
        print(f"tokenizer: training WordPiece (vocab {setup.tokenizer.vocab_size}{morphemes}) on the corpus")
        # The tokenizers library's bar only draws on a terminal; elsewhere it prints blank lines.
        show_progress = setup.training.progress and sys.stderr.isatty()
        tokenizer = train_tokenizer(CorpusSentences(setup.corpus), setup.tokenizer, show_progress=show_progress)
    if tokenizer_dir.exists():
        shutil.rmtree(tokenizer_dir)
    save_tokenizer(tokenizer, tokenizer_dir, model_max_length=setup.data.max_seq_length)
    return load_tokenizer(tokenizer_dir)


def _on_main_first(context: DistributedContext, first, then=None):
    """`first()` on rank 0; once it is done, `then()` (default: `first()`) on the other ranks, which read what rank 0 wrote."""
    built = first() if context.is_main else None
    wait_for_main(context)
    return built if context.is_main else (then or first)()


def _build_model(
    setup: PretrainSetup,
    objective: PretrainingObjective,
    settings: Any,
    vocab_size: int,
    init: InitSource | None,
    saved_run: dict | None,
) -> tuple[torch.nn.Module, BertConfig]:
    """The objective's model, from --init's weights or new (a resumed run's `saved_run` shapes it), and its encoder's config."""
    torch.manual_seed(setup.training.seed)
    if init is not None:
        if setup.model_overrides:
            raise PrefineError("model flags such as --hidden-size shape a new model; drop them when starting from --init")
        config = init.config
        if setup.data.max_seq_length > config.max_position_embeddings:
            raise PrefineError(
                f"--max-seq-length {setup.data.max_seq_length} exceeds the {config.max_position_embeddings} positions of "
                f"{init.description}; lower it"
            )
        return objective.model_from_init(init, settings), config
    shape = {"vocab_size": vocab_size, "max_position_embeddings": max(512, setup.data.max_seq_length), **setup.model_overrides}
    config = preset_config(setup.run.preset, **shape)
    if setup.data.max_seq_length > config.max_position_embeddings:
        raise PrefineError(
            f"--max-seq-length {setup.data.max_seq_length} exceeds --max-position-embeddings {config.max_position_embeddings}; "
            "raise the latter"
        )
    return objective.build_model(config, settings, saved_run), config


def _choose_preset(
    setup: PretrainSetup,
    objective: PretrainingObjective,
    settings: Any,
    vocab_size: int,
    train_batches: PretrainingBatches,
    eval_batches: list,
    shards: TokenShards,
    context: DistributedContext,
) -> dict:
    """--preset auto: time each candidate preset on this run's batches (rank 0), then apply the rule of `pretrain_budget`."""
    budget = setup.training.max_time_seconds
    assert budget is not None  # setup_from_args resolves auto without --max-time to mini
    micro_batch = setup.training.batch_size // setup.training.gradient_accumulation_steps
    tokens_per_step = micro_batch * setup.data.max_seq_length

    def measure(preset: str) -> float:
        candidate = dataclasses.replace(setup, run=dataclasses.replace(setup.run, preset=preset))
        model, _ = _build_model(candidate, objective, settings, vocab_size, None, None)
        task = objective.training_task(train_batches, eval_batches, context.device, settings)
        return measure_tokens_per_second(model, task, setup.training, context.device, tokens_per_step)

    rates = presets_worth_measuring(budget, shards.num_tokens, measure) if context.is_main else {}
    rates = broadcast_from_main(rates, context)
    choice = choose_preset(budget, shards.num_tokens, rates)
    return choice_record(None, vocab_size, "", budget, shards.num_tokens, rates, choice)


def _start_new_model(
    setup: PretrainSetup,
    objective: PretrainingObjective,
    model: torch.nn.Module,
    config: BertConfig,
    batches: PretrainingBatches,
    from_checkpoint: bool,
    is_main: bool,
) -> dict | None:
    """A new model's starting weights beyond its initialisation: biases from the corpus, mimetic
    attention, embeddings from co-occurrence counts. Returns the record of the last, or None."""
    if setup.run.frequency_bias:
        # Every rank computes the same counts from the same shards (and a resumed run's
        # checkpoint replaces these weights anyway).
        objective.start_from_token_frequencies(model, torch.from_numpy(batches.train_token_counts()), setup.data.mlm_probability)
    # A resumed run's checkpoint replaces what follows, so it skips the work; one killed before
    # its first checkpoint starts again from step 0 and needs the same weights as the first try.
    if from_checkpoint:
        return None
    if setup.run.mimetic_init:
        # Its own generator, seeded like the run: every rank starts from the same weights, and
        # the global random stream the rest of the run draws from is left as it was.
        apply_mimetic_init(model, config.initializer_range, torch.Generator().manual_seed(setup.training.seed))
    if setup.run.embedding_init == "cooccurrence":
        return _start_embeddings_from_cooccurrence(setup, objective, model, config, batches, is_main)
    return None


def _start_embeddings_from_cooccurrence(
    setup: PretrainSetup,
    objective: PretrainingObjective,
    model: torch.nn.Module,
    config: BertConfig,
    batches: PretrainingBatches,
    is_main: bool,
) -> dict:
    """--embedding-init cooccurrence: fill the word-piece tables from PPMI + SVD vectors of the training documents."""
    started = time.monotonic()
    if is_main:
        print("embeddings: counting co-occurrences in the training documents (PPMI + SVD)", flush=True)
    tables = objective.word_embedding_tables(model)
    width = max(table.embedding_dim for table in tables)
    vectors, covered = cooccurrence_vectors(
        batches.shards, batches.doc_ids, batches.train_token_counts(), width, row_norm=1.0, seed=setup.training.seed
    )
    with torch.no_grad():
        for table in tables:
            # A random row of N(0, initializer_range) has norm about initializer_range * sqrt(width):
            # the vectors come in at that size, beside position and segment rows drawn the same way.
            rows = vectors[covered, : table.embedding_dim]
            rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12) * config.initializer_range * math.sqrt(table.embedding_dim)
            table.weight[covered.to(table.weight.device)] = rows.to(table.weight.dtype).to(table.weight.device)
    seconds = time.monotonic() - started
    record = {"method": "cooccurrence", "rows": int(covered.sum()), "vocab_size": int(len(covered)), "seconds": round(seconds, 2)}
    if is_main:
        print(f"embeddings: {record['rows']:,} of {record['vocab_size']:,} word pieces start from co-occurrence vectors ({seconds:.1f} s)")
    return record


def run_pretraining(setup: PretrainSetup) -> TrainingResult:
    run_dir = Path(setup.run.out)
    created = not run_dir.exists()
    try:
        return _run_pretraining(setup, run_dir)
    except BaseException:
        # A new run that failed before it recorded itself (run.json) leaves nothing behind:
        # no tokenizer folder that would make the next attempt look like a half-made run.
        if created and not setup.run.resume and run_dir.exists() and not is_run_dir(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _run_pretraining(setup: PretrainSetup, run_dir: Path) -> TrainingResult:
    resuming = bool(setup.run.resume)
    objective = get_objective(setup.data.objective)
    settings = resolved_settings(objective, setup.objective_settings)
    context = init_distributed(setup.training.device)
    check_batch_split(setup.training.batch_size, setup.training.gradient_accumulation_steps, context.world_size)
    # A run killed before its first checkpoint resumes from step 0: same seed, same weights.
    from_checkpoint = resuming and latest_checkpoint(run_dir) is not None
    if resuming and not from_checkpoint and context.is_main:
        print(f"resume: {run_dir} has no checkpoint yet; training it from step 0")
    init = resolve_init(setup.run.init) if setup.run.init and not from_checkpoint else None
    if init is not None:
        objective.check_init(init.config, setup.run.init)

    corpus_words, vocab_reason = None, ""
    if setup.vocabulary_from_budget and not resuming and init is None:
        corpus_words = count_words(iter_sentences(setup.corpus))
        vocab_size, vocab_reason = choose_vocab_size(corpus_words)
        setup.tokenizer = dataclasses.replace(setup.tokenizer, vocab_size=vocab_size)
    # Only rank 0 trains (or copies) and saves the tokenizer: WordPiece training is not
    # reproducible, so every other rank must read the very files rank 0 wrote.
    tokenizer = _on_main_first(
        context, lambda: _prepare_tokenizer(setup, run_dir, init, resuming), lambda: load_tokenizer(run_dir / TOKENIZER_DIR)
    )
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    fingerprint = corpus_fingerprint(setup.corpus)
    cache_root = Path(setup.run.cache_dir) if setup.run.cache_dir else default_cache_dir()
    key_parts = {"corpus": fingerprint, "tokenizer": tokenizer_hash, "max_sentences": setup.corpus.max_sentences_per_document}
    # Rank 0 builds the token cache when it is missing; the others then open what it built.
    shards = _on_main_first(
        context, lambda: cached_token_shards(lambda: iter_documents(setup.corpus), tokenizer, cache_root / "token_shards", key_parts)
    )
    micro_batch = setup.training.batch_size // setup.training.gradient_accumulation_steps
    train_batches = PretrainingBatches.from_tokenizer(shards, tokenizer, setup.data, setup.training.seed, micro_batch)
    eval_batches = train_batches.eval_batches(micro_batch)
    if context.is_main and not resuming and (message := sequence_length_warning(shards, train_batches.doc_ids, setup.data.max_seq_length)):
        print(f"warning: {message}")

    budget_choice = None
    if setup.run.preset == AUTO_PRESET and init is None and not resuming:
        budget_choice = _choose_preset(setup, objective, settings, tokenizer.get_vocab_size(), train_batches, eval_batches, shards, context)
        budget_choice["inputs"]["corpus_words"] = corpus_words
        budget_choice["vocab_reason"] = vocab_reason or "the vocabulary given (--vocab-size or --tokenizer)"
        setup.run = dataclasses.replace(setup.run, preset=budget_choice["preset"])
        if context.is_main:
            vocabulary = f"vocabulary {tokenizer.get_vocab_size():,}" + (f" for {vocab_reason}" if vocab_reason else "")
            print(f"auto: preset {budget_choice['preset']}, {vocabulary}: {budget_choice['reason']}")

    saved_run = read_run(run_dir) if resuming else None
    if saved_run is not None:
        budget_choice = saved_run.get("budget_choice")  # made once, when the run started; a resume keeps its record
    model, model_config = _build_model(setup, objective, settings, tokenizer.get_vocab_size(), init, saved_run)
    embedding_record = None
    if init is None:
        embedding_record = _start_new_model(setup, objective, model, model_config, train_batches, from_checkpoint, context.is_main)
    if saved_run is not None:
        # Made once, when the run started (its seconds already came off the saved budget); a resume keeps its record.
        embedding_record = saved_run.get("embedding_init")
    budget = setup.training.max_time_seconds
    if embedding_record is not None and budget is not None and not resuming:
        # The vectors are part of the run's cost: their seconds come off the training budget,
        # so a run with them and one without take the same wall time (the ranks agree on rank 0's figure).
        spent = broadcast_from_main(embedding_record["seconds"], context)
        left = max(budget - spent, 1.0)
        setup.training = dataclasses.replace(setup.training, max_time=f"{left:.1f}s")
        embedding_record["charged_to_max_time"] = True
        if context.is_main:
            print(f"embeddings: {spent:.1f} s charged to --max-time; {left:.0f} s left for training")
    # Read through BertConfig, so a run saved before a field existed compares with its default.
    if saved_run is not None and from_dict(BertConfig, saved_run["model"], f"{run_dir}/run.json") != model_config:
        raise PrefineError(f"{run_dir}/run.json's model config differs from the rebuilt one; the run folder was edited by hand")
    checkpoint_config = {
        **objective.checkpoint_config(model),
        CHECKPOINT_OBJECTIVE_KEY: objective.name,
        "tokenizer_fingerprint": tokenizer_hash,
    }
    record = run_record(
        "pretrain",
        run=setup.run,
        corpus=setup.corpus,
        tokenizer=setup.tokenizer,
        data=setup.data,
        training=setup.training,
        model=model_config,
        model_overrides=setup.model_overrides,
        **objective.run_sections(model, settings),
        init=init.description if init else None,
        corpus_fingerprint=fingerprint,
        tokenizer_fingerprint=tokenizer_hash,
        **({"budget_choice": budget_choice} if budget_choice is not None else {}),
        **({"embedding_init": embedding_record} if embedding_record is not None else {}),
    )
    if context.is_main:
        write_run(run_dir, record)
        _announce(setup, objective, model, model_config, init, shards, micro_batch, context)
    task = objective.training_task(train_batches, eval_batches, context.device, settings)
    registry = open_registry(setup.run.registry, run_dir) if context.is_main else None
    with (
        recorded_run(
            registry,
            resume_artifact=resuming,
            name=setup.run.name or run_dir.name,
            kind="pretrain",
            parent_id=parent_run_id(registry, init, setup.run.init) if init else None,
            config=record,
            data_fingerprints={"corpus": fingerprint},
            tokenizer_hash=tokenizer_hash,
            artifact_path=run_dir,
        )
        if registry is not None
        else contextlib.nullcontext(RunHandle(record=None))  # only rank 0 records the run
    ) as handle:
        result = train(
            model, task, setup.training, run_dir, checkpoint_config, context, resume=from_checkpoint, on_progress=handle.heartbeat
        )
        metric = objective.headline_metric
        handle.set_metrics(result.last_eval, (metric, result.last_eval[metric]) if metric in result.last_eval else None)
    if context.is_main:
        print(f"done: {result.step} steps; checkpoint {result.last_checkpoint}")
        for line in objective.summary(result.last_eval, run_dir, train_batches, eval_batches):
            print(line)
    return result


def _announce(
    setup: PretrainSetup,
    objective: PretrainingObjective,
    model: torch.nn.Module,
    shape: BertConfig,
    init: InitSource | None,
    shards: TokenShards,
    micro_batch: int,
    context: DistributedContext,
) -> None:
    """The start-up lines: what the objective says about its model, then size, corpus and how the batch is split."""
    for line in objective.describe_model(model):
        print(line)
    ramp = setup.training.batch_ramp
    # The shape as well as the preset's name: --num-hidden-layers and the other shape flags change
    # a preset, and --init brings a shape of its own.
    print(
        f"model: {setup.run.preset if init is None else 'from --init'} ({shape.num_hidden_layers} blocks of {shape.hidden_size}, "
        f"{count_parameters(model) / 1e6:.1f}M parameters), "
        f"{shards.num_documents} documents / {shards.num_tokens} tokens, "
        f"global batch {setup.training.batch_size} = {micro_batch // context.world_size} per process x "
        f"{context.world_size} processes x {setup.training.gradient_accumulation_steps} accumulation steps"
        + (f", growing from {micro_batch} over the first {ramp:.0%} of the budget" if ramp > 0 else "")
    )
