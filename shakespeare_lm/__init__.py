"""shakespeare_lm: build a character-level GPT on Tiny Shakespeare, step by step.

The finished, tested components the notebook series builds by hand. Importing the package has no
side effects (no downloads, no prints, no global settings) and is cheap: each public name is
imported from its module the first time it is used. So `python -m shakespeare_lm --help` answers
at once, and a Ctrl-C while torch is still loading is handled by the command line like any other.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# public name -> the module that defines it (all importable with `from shakespeare_lm import ...`)
_EXPORTS: dict[str, str] = {
    # the corpus
    "load_shakespeare": "data", "load_text": "data", "train_val_split": "data", "get_batch": "data",
    "DownloadError": "data", "CorpusMismatchError": "data",
    # tokenizers
    "CharTokenizer": "tokenizer", "BPETokenizer": "bpe", "WordTokenizer": "word_tokenizer",
    "load_tokenizer": "tokenizer",
    # models
    "BigramLanguageModel": "model", "Head": "model", "MultiHeadAttention": "model",
    "FeedForward": "model", "Block": "model", "GPT": "model", "GPTConfig": "model",
    "PRESETS": "model", "get_preset": "model",
    "sinusoidal_table": "positional", "rope_angles": "positional", "apply_rope": "positional",
    "Rotary": "positional",
    # sampling
    "generate": "sampling", "sample_text": "sampling", "stream_text": "sampling",
    "top_k_filter": "sampling", "top_p_filter": "sampling",
    # training
    "train": "training", "TrainingDivergedError": "training", "TrainConfig": "train_config",
    "TRAIN_PRESETS": "train_config", "get_train_preset": "train_config", "History": "history",
    "TrainState": "history", "get_lr": "optim", "Muon": "optim", "muon_params": "optim",
    "OPTIMIZERS": "train_config", "RunDirExistsError": "preflight",
    "RunDirLockedError": "runlock", "sweep": "tuning", "SweepResult": "tuning",
    "log_uniform": "tuning_space", "uniform": "tuning_space",
    # evaluation
    "estimate_loss": "evaluation", "evaluate": "evaluation", "EvalResult": "evaluation",
    # checkpoints and the bundled model
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "CheckpointError": "checkpoint",
    "pretrained": "bundled",
    # plots and widgets
    "plot_history": "plotting", "plot_attention": "plotting", "LivePlotCallback": "plotting",
    "sampling_playground": "widgets", "SamplingPlayground": "widgets",
    "attention_explorer": "widgets", "AttentionExplorer": "widgets",
    # helpers
    "set_seed": "utils", "pick_device": "utils", "pick": "utils", "is_quick": "utils",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shakespeare_lm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

