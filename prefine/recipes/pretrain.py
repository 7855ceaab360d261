"""`prefine pretrain`: raw corpus -> tokenizer -> token shards -> BERT (or ELECTRA) pre-training run.

A thin recipe: each stage lives in its own package; this module only wires their configs to
flags, decides where the tokenizer and weights come from (fresh, --tokenizer, --init, --resume),
and records the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from prefine.checkpoint import TOKENIZER_DIR, is_run_dir, latest_checkpoint, read_run, write_run
from prefine.config import add_dataclass_arguments, explicit_overrides, from_args, from_dict, option
from prefine.corpus import CorpusConfig, check_corpus, corpus_fingerprint, iter_documents, iter_sentences
from prefine.errors import PrefineError
from prefine.model import PRESETS, BertConfig, BertForPreTraining, count_parameters, preset_config
from prefine.model.bert import apply_mimetic_init
from prefine.model.electra import (
    ElectraObjectiveConfig,
    ElectraPreTrainingModel,
    electra_checkpoint_config,
    electra_state_from_bert,
    generator_config,
    load_electra_state,
)
from prefine.pretraining_data import PretrainingBatches, PretrainingDataConfig, cached_token_shards, sequence_length_warning
from prefine.recipes.common import (
    InitSource,
    check_resume_overrides,
    default_cache_dir,
    open_registry,
    parent_run_id,
    resolve_init,
    run_record,
)
from prefine.registry import RunHandle, default_registry_path, recorded_run
from prefine.tasks.pretraining import ElectraPretrainingTask, PretrainingTask
from prefine.tokenizer import TokenizerConfig, load_tokenizer, save_tokenizer, tokenizer_fingerprint, train_tokenizer
from prefine.training import RESUMABLE_OVERRIDES, TrainingConfig, TrainingResult, init_distributed, train
from prefine.training.config import with_time_budget
from prefine.training.distributed import check_batch_split, wait_for_main


@dataclass
class PretrainRunConfig:
    out: str = option("", "run folder to create (e.g. runs/ko-mini)")
    resume: str = option("", "continue the run in this folder exactly where it stopped")
    preset: str = option("mini", "model size: tiny, mini, small, medium, base or large")
    init: str = option(
        "", "start from these weights instead of random ones (continued pre-training): a prefine run or a Hugging Face BERT folder/name"
    )
    tokenizer: str = option("", "reuse the tokenizer in this folder instead of training one on the corpus")
    cache_dir: str = option("", "where tokenized corpora are cached (default: $PREFINE_CACHE or ~/.cache/prefine)")
    registry: str = option("", "run registry database (default: registry.sqlite beside the run folder, or $PREFINE_REGISTRY)")
    name: str = option("", "name of the run in the registry (default: the run folder's name)")
    frequency_bias: bool = option(
        True,
        "start a new model's output biases from the corpus: the MLM (or ELECTRA generator) bias at the log word frequencies, "
        "the ELECTRA discriminator's at the log-odds of a replaced token, so training does not bend the encoder's states to learn them",
    )
    mimetic_init: bool = option(
        False,
        "start a new model's attention heads with their query-key product near the identity (mimetic init) and its position "
        "embeddings as sinusoids: it raised held-out masked-LM accuracy on the built-in corpus in 45 minutes, but those weights "
        "fine-tuned no better there, and worse on SST-2 (docs/pretraining-defaults.md)",
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
# ELECTRA's discriminator learns from a weak, noisy signal early on (which of ~13% of tokens a
# generator replaced); at mlm's 1e-3 it did not leave its prior (in a 45-minute SST-2 run its AUC
# fell back to chance while the rate was at its peak), after 15 minutes it fine-tuned 6.2 points
# below random init on SST-2, and on the built-in corpus to the majority class. At 3e-4
# (ELECTRA-Small's 5e-4 at batch 128 is about 2.5e-4 at prefine's 32 by square-root scaling) the
# same 15 minutes fine-tuned 4.4 points higher on SST-2 and 12 / 41 points higher on the built-in
# task with 10% / all of its labels (docs/electra.md, "Learning rate"). Still below mlm there.
ELECTRA_LEARNING_RATE = 3e-4


def pretraining_defaults(objective: str) -> TrainingConfig:
    """What a plain `prefine pretrain --objective OBJECTIVE` trains with when no flag says otherwise."""
    if objective == "electra":
        return dataclasses.replace(PRETRAIN_TRAINING_DEFAULTS, learning_rate=ELECTRA_LEARNING_RATE)
    return PRETRAIN_TRAINING_DEFAULTS


# RoBERTa's FULL-SENTENCES packing: every position of every sequence is text to learn from, where
# BERT's sentence pairs shorten 10% of sequences and truncate the rest; RoBERTa found next-sentence
# prediction does not help downstream, and most corpora of reviews are one sentence per document,
# where NSP gets no examples at all. --objective mlm+nsp gives BERT's original recipe.
PRETRAIN_DATA_DEFAULTS = PretrainingDataConfig(objective="mlm")
# Dropout regularises models trained for many epochs; a CPU budget of minutes to hours sees each
# text a few times at most, and there dropout only slows learning (cramming). Model flags
# (--hidden-dropout-prob ...) override these; fine-tuning restores BERT's 0.1 (finetune --dropout).
# The MLM head gets a vocabulary matrix of its own: tied to the input embeddings, the early
# softmax gradient drags every rare word's embedding into one shared direction, and those
# embeddings cost fine-tuning on SST-2 (docs/pretraining-defaults.md, "The MLM head: untied").
# ELECTRA keeps its generator tied to the shared embeddings (its paper's design).
PRETRAIN_MODEL_DEFAULTS = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "tie_word_embeddings": False}
TOKENIZER_DEFAULTS = TokenizerConfig()
CORPUS_FLAGS = {"paths": "corpus"}
# The vocabulary comes from the tokenizer and the segment/pad layout from BERT itself; a narrower
# embedding (with its projection) comes only from an imported ELECTRA-Small-style --init.
MODEL_FIELDS_NOT_OVERRIDABLE = ("vocab_size", "type_vocab_size", "pad_token_id", "embedding_size")


def add_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train a BERT encoder on a raw text corpus (masked LM; BERT's MLM + NSP with --objective mlm+nsp; ELECTRA with --objective electra)",
        description="Pre-train a BERT encoder from a raw corpus: trains a WordPiece tokenizer, tokenizes into cached "
        "memory-mapped shards, and trains with masked-LM (plus next-sentence prediction with --objective mlm+nsp; "
        "ELECTRA's generator and replaced-token discriminator with --objective electra).",
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
    add_dataclass_arguments(parser.add_argument_group("pre-training data"), PretrainingDataConfig, defaults=PRETRAIN_DATA_DEFAULTS)
    add_dataclass_arguments(parser.add_argument_group("ELECTRA (with --objective electra)"), ElectraObjectiveConfig)
    add_dataclass_arguments(parser.add_argument_group("training"), TrainingConfig, defaults=PRETRAIN_TRAINING_DEFAULTS)
    parser.set_defaults(func=run_from_args)


@dataclass
class PretrainSetup:
    run: PretrainRunConfig
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    data: PretrainingDataConfig
    training: TrainingConfig
    model_overrides: dict = dataclasses.field(default_factory=dict)  # BertConfig fields that replace the preset's
    electra: ElectraObjectiveConfig = dataclasses.field(default_factory=ElectraObjectiveConfig)  # used with --objective electra


def _electra_settings(args: argparse.Namespace, data: PretrainingDataConfig) -> ElectraObjectiveConfig:
    requested = explicit_overrides(args, ElectraObjectiveConfig)
    if requested and data.objective != "electra":
        flag = "--" + next(iter(requested)).replace("_", "-")
        raise PrefineError(f"{flag} applies to ELECTRA only; add --objective electra or drop the flag")
    return ElectraObjectiveConfig(**requested)


def _model_overrides(args: argparse.Namespace) -> dict:
    # --vocab-size belongs to the tokenizer group (the model takes the trained vocabulary's size).
    overrides = explicit_overrides(args, BertConfig)
    return {key: value for key, value in overrides.items() if key not in MODEL_FIELDS_NOT_OVERRIDABLE}


def new_model_settings(overrides: dict, data: PretrainingDataConfig) -> dict:
    """The preset's replacements for a new model: pre-training's defaults, then the user's flags."""
    if data.objective != "electra":
        return {**PRETRAIN_MODEL_DEFAULTS, **overrides}
    if overrides.get("tie_word_embeddings") is False:
        raise PrefineError(
            "--no-tie-word-embeddings does not apply to --objective electra: its generator scores the vocabulary with the shared embedding table; drop the flag"
        )
    return {**PRETRAIN_MODEL_DEFAULTS, "tie_word_embeddings": True, **overrides}


def setup_from_args(args: argparse.Namespace) -> PretrainSetup:
    run = from_args(PretrainRunConfig, args)
    if run.resume:
        return _resumed_setup(run, args)
    if not run.out:
        raise PrefineError("pass --out FOLDER for the new run (or --resume FOLDER to continue one)")
    if is_run_dir(Path(run.out)):
        raise PrefineError(f"{run.out} already holds a run; continue it with --resume {run.out} or choose another --out")
    if run.preset not in PRESETS and not run.init:
        raise PrefineError(f"unknown preset '{run.preset}'; choose one of {', '.join(PRESETS)}")
    if run.init and run.mimetic_init:
        raise PrefineError(f"--mimetic-init sets a new model's starting weights; --init {run.init} brings its own, so drop one of them")
    data = from_args(PretrainingDataConfig, args, base=PRETRAIN_DATA_DEFAULTS)
    training = with_time_budget(
        from_args(TrainingConfig, args, base=pretraining_defaults(data.objective)), explicit_steps=args.max_steps is not None
    )
    corpus = from_args(CorpusConfig, args)
    check_new_run(run, corpus)
    return PretrainSetup(
        run=run,
        corpus=corpus,
        tokenizer=from_args(TokenizerConfig, args, base=TOKENIZER_DEFAULTS),
        data=data,
        training=training,
        # --init brings its own architecture; the defaults shape only a new model.
        model_overrides=_model_overrides(args) if run.init else new_model_settings(_model_overrides(args), data),
        electra=_electra_settings(args, data),
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
        check_resume_overrides(
            saved[group],
            explicit_overrides(
                args,
                cls,
            ),
            allowed,
            f"the {group}",
        )
    check_resume_overrides(saved["model"], _model_overrides(args), frozenset(), "the model")
    saved_electra = saved.get("electra") or {}
    check_resume_overrides(saved_electra, explicit_overrides(args, ElectraObjectiveConfig), frozenset(), "the ELECTRA objective")
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
        data=from_dict(PretrainingDataConfig, saved["data"], "data"),
        training=training,
        model_overrides=saved.get("model_overrides", {}),
        electra=from_dict(ElectraObjectiveConfig, saved_electra, "electra"),
    )


def run_from_args(args: argparse.Namespace) -> int:
    result = run_pretraining(setup_from_args(args))
    return 0 if result is not None else 1


def _prepare_tokenizer(setup: PretrainSetup, run_dir: Path, init: InitSource | None, resuming: bool):
    tokenizer_dir = run_dir / TOKENIZER_DIR
    if resuming:
        return load_tokenizer(tokenizer_dir)
    if init is not None:
        tokenizer = init.tokenizer
        print(f"tokenizer: from {init.description}")
    elif setup.run.tokenizer:
        tokenizer = load_tokenizer(Path(setup.run.tokenizer))
        print(f"tokenizer: reusing {setup.run.tokenizer}")
    else:
        print(f"tokenizer: training WordPiece (vocab {setup.tokenizer.vocab_size}) on the corpus")
        # The tokenizers library's bar only draws on a terminal; elsewhere it prints blank lines.
        show_progress = setup.training.progress and sys.stderr.isatty()
        tokenizer = train_tokenizer(iter_sentences(setup.corpus), setup.tokenizer, show_progress=show_progress)
    if tokenizer_dir.exists():
        shutil.rmtree(tokenizer_dir)
    save_tokenizer(tokenizer, tokenizer_dir, model_max_length=setup.data.max_seq_length)
    return load_tokenizer(tokenizer_dir)


def _electra_from_init(setup: PretrainSetup, init: InitSource) -> ElectraPreTrainingModel:
    """ELECTRA from --init: the source's whole ELECTRA state where it has one (its generator's shape
    wins over --generator-size); otherwise its encoder becomes the discriminator and the generator starts fresh."""
    saved = init.electra
    if saved is not None and saved.has_generator:
        generator, state = saved.generator_config, saved.state_dict
    else:
        generator = generator_config(init.config, setup.electra.generator_size)
        state = saved.state_dict if saved is not None else electra_state_from_bert(init.state_dict)
    model = ElectraPreTrainingModel(init.config, generator, setup.electra)
    fresh = load_electra_state(model, state)
    if fresh:
        print(f"init: loaded {init.description}; newly initialized: ELECTRA {', '.join(fresh)}")
    return model


def _new_model(setup: PretrainSetup, config: BertConfig, saved_generator: BertConfig | None) -> torch.nn.Module:
    if setup.data.objective != "electra":
        return BertForPreTraining(config)
    # A resumed run rebuilds the generator it recorded (it may have come from an --init).
    generator = saved_generator or generator_config(config, setup.electra.generator_size)
    return ElectraPreTrainingModel(config, generator, setup.electra)


def _build_model(
    setup: PretrainSetup, vocab_size: int, init: InitSource | None, saved_generator: BertConfig | None = None
) -> tuple[torch.nn.Module, BertConfig]:
    """The model to train (BertForPreTraining, or ElectraPreTrainingModel under --objective electra) and its encoder's config."""
    torch.manual_seed(setup.training.seed)
    if init is not None:
        if setup.model_overrides:
            raise PrefineError("model flags such as --hidden-size shape a new model; drop them when starting from --init")
        config = init.config
        if setup.data.max_seq_length > config.max_position_embeddings:
            raise PrefineError(
                f"--max-seq-length {setup.data.max_seq_length} exceeds the {config.max_position_embeddings} positions of {init.description}; lower it"
            )
        if setup.data.objective == "electra":
            return _electra_from_init(setup, init), config
        model = BertForPreTraining(config)
        from prefine.interop import load_into

        report = load_into(model, init.state_dict)
        if report.newly_initialized:
            print(f"init: loaded {init.description}; newly initialized: {', '.join(report.newly_initialized)}")
        return model, config
    shape = {"vocab_size": vocab_size, "max_position_embeddings": max(512, setup.data.max_seq_length), **setup.model_overrides}
    config = preset_config(setup.run.preset, **shape)
    if setup.data.max_seq_length > config.max_position_embeddings:
        raise PrefineError(
            f"--max-seq-length {setup.data.max_seq_length} exceeds --max-position-embeddings {config.max_position_embeddings}; raise the latter"
        )
    return _new_model(setup, config, saved_generator), config


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
    context = init_distributed(setup.training.device)
    check_batch_split(setup.training.batch_size, setup.training.gradient_accumulation_steps, context.world_size)
    # A run killed before its first checkpoint resumes from step 0: same seed, same weights.
    from_checkpoint = resuming and latest_checkpoint(run_dir) is not None
    if resuming and not from_checkpoint and context.is_main:
        print(f"resume: {run_dir} has no checkpoint yet; training it from step 0")
    init = resolve_init(setup.run.init) if setup.run.init and not from_checkpoint else None
    if init is not None and init.config.embedding_size and setup.data.objective != "electra":
        # BERT's masked-LM head scores the vocabulary from hidden_size-wide states with the
        # embedding table; ELECTRA's generator head maps back to the embedding width first.
        raise PrefineError(
            f"--init {setup.run.init} projects {init.config.embedding_size}-wide embeddings up to {init.config.hidden_size} "
            f"(ELECTRA-Small's layout), which --objective {setup.data.objective}'s head cannot score the vocabulary with; "
            "continue it with --objective electra, or fine-tune it"
        )

    # Only rank 0 trains (or copies) and saves the tokenizer: WordPiece training is not
    # reproducible, so every other rank must read the very files rank 0 wrote.
    tokenizer = _prepare_tokenizer(setup, run_dir, init, resuming) if context.is_main else None
    wait_for_main(context)
    if tokenizer is None:
        tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    fingerprint = corpus_fingerprint(setup.corpus)
    cache_root = Path(setup.run.cache_dir) if setup.run.cache_dir else default_cache_dir()

    def open_shards():
        return cached_token_shards(
            lambda: iter_documents(setup.corpus),
            tokenizer,
            cache_root / "token_shards",
            {"corpus": fingerprint, "tokenizer": tokenizer_hash, "max_sentences": setup.corpus.max_sentences_per_document},
        )

    # Rank 0 builds the token cache when it is missing; the others then open what it built.
    shards = open_shards() if context.is_main else None
    wait_for_main(context)
    if shards is None:
        shards = open_shards()
    micro_batch = setup.training.batch_size // setup.training.gradient_accumulation_steps
    train_batches = PretrainingBatches.from_tokenizer(shards, tokenizer, setup.data, setup.training.seed, micro_batch)
    eval_batches = train_batches.eval_batches(micro_batch)
    if context.is_main and not resuming and (message := sequence_length_warning(shards, train_batches.doc_ids, setup.data.max_seq_length)):
        print(f"warning: {message}")

    saved_generator = None
    if resuming and read_run(run_dir).get("generator"):
        saved_generator = from_dict(BertConfig, read_run(run_dir)["generator"], "generator")
    model, model_config = _build_model(setup, tokenizer.get_vocab_size(), init, saved_generator)
    if init is None and setup.run.frequency_bias:
        # Every rank computes the same counts from the same shards (and a resumed run's
        # checkpoint replaces these weights anyway).
        counts = torch.from_numpy(train_batches.train_token_counts())
        model.start_from_token_frequencies(counts, setup.data.mlm_probability)
    if init is None and setup.run.mimetic_init and not resuming:
        # Its own generator, seeded like the run: every rank starts from the same weights, and
        # the global random stream the rest of the run draws from is left as it was. A resumed
        # run's checkpoint replaces these weights, so it skips the SVD per head.
        apply_mimetic_init(model, model_config.initializer_range, torch.Generator().manual_seed(setup.training.seed))
    if resuming:
        # Read through BertConfig, so a run saved before a field existed compares with its default.
        saved_model = from_dict(BertConfig, read_run(run_dir)["model"], f"{run_dir}/run.json")
        if saved_model != model_config:
            raise PrefineError(f"{run_dir}/run.json's model config differs from the rebuilt one; the run folder was edited by hand")
    is_electra = isinstance(model, ElectraPreTrainingModel)
    if is_electra:
        checkpoint_config = {**electra_checkpoint_config(model), "tokenizer_fingerprint": tokenizer_hash}
    else:
        checkpoint_config = {
            **dataclasses.asdict(model_config),
            "model_type": "bert",
            "architectures": ["BertForPreTraining"],
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
        electra=setup.electra if is_electra else None,
        generator=model.generator_config if is_electra else None,
        init=init.description if init else None,
        corpus_fingerprint=fingerprint,
        tokenizer_fingerprint=tokenizer_hash,
    )
    if context.is_main:
        write_run(run_dir, record)
        if is_electra:
            print(
                f"ELECTRA: discriminator {count_parameters(model.electra) / 1e6:.1f}M parameters (what fine-tuning starts from), "
                f"generator {model.generator_config.hidden_size} wide ({count_parameters(model.generator) / 1e6:.2f}M parameters "
                "besides the shared embeddings)"
            )
        print(
            f"model: {setup.run.preset if init is None else 'from --init'} ({count_parameters(model) / 1e6:.1f}M parameters), "
            f"{shards.num_documents} documents / {shards.num_tokens} tokens, "
            f"global batch {setup.training.batch_size} = {micro_batch // context.world_size} per process x "
            f"{context.world_size} processes x {setup.training.gradient_accumulation_steps} accumulation steps"
            + (
                f", growing from {micro_batch} over the first {setup.training.batch_ramp:.0%} of the budget"
                if setup.training.batch_ramp > 0
                else ""
            )
        )
    if is_electra:
        task = ElectraPretrainingTask(train_batches, eval_batches, context.device, setup.electra)
    else:
        task = PretrainingTask(train_batches, eval_batches, context.device)
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
        key = ("mlm_accuracy", result.last_eval["mlm_accuracy"]) if "mlm_accuracy" in result.last_eval else None
        handle.set_metrics(result.last_eval, key)
    if context.is_main:
        print(f"done: {result.step} steps; checkpoint {result.last_checkpoint}")
        # A reference for the held-out loss: masked LM first learns word frequencies, and only a
        # loss well below theirs says the encoder has learned something about context.
        if "mlm_loss" in result.last_eval and (baseline := train_batches.unigram_baseline(eval_batches)) is not None:
            print(
                f"held-out masked LM: loss {result.last_eval['mlm_loss']:.2f} nats, accuracy {result.last_eval['mlm_accuracy']:.1%} "
                f"(word frequencies alone: {baseline[0]:.2f} nats, {baseline[1]:.1%})"
            )
        for line in discriminator_summary(result.last_eval, run_dir):
            print(line)
    return result


# Every 15-minute ELECTRA run with BERT's init in docs/electra.md (a mini on a 2-core CPU) ended
# below this held-out AUC, at 0.54-0.62, and each fine-tuned below random init with all the task's
# labels: the blocks had not yet learned anything that transfers. Passing it is no promise: the
# 45-minute run (0.67) stayed behind masked LM, and a --mimetic-init run (0.72) fine-tuned no
# better than the default ELECTRA run.
FIRST_PHASE_AUC = 0.65


def discriminator_summary(last_eval: dict, run_dir: Path) -> list[str]:
    """The end-of-run lines for an ELECTRA run: how well the discriminator spots replacements,
    and a note when it is still in the phase whose weights fine-tuned worse than random ones."""
    if "replaced_auc" not in last_eval:
        return []
    auc = last_eval["replaced_auc"]
    lines = [f"held-out replaced-token detection: ROC AUC {auc:.2f} (0.50 is chance), recall {last_eval.get('replaced_recall', 0.0):.1%}"]
    if auc < FIRST_PHASE_AUC:
        lines.append(
            f"note: the discriminator has barely started telling replaced tokens apart (AUC below {FIRST_PHASE_AUC}); in prefine's "
            "benchmarks such weights fine-tuned below random init when labels were plentiful. Train longer "
            f"(prefine pretrain --resume {run_dir} --max-time ...) or use --objective mlm, and check with "
            f"prefine compare --init {run_dir} --checkpoints all"
        )
    return lines
