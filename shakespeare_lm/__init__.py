"""shakespeare_lm: build a character-level GPT on Tiny Shakespeare, step by step.

The finished, tested components the notebook series builds by hand. Importing has no side
effects (no downloads, no prints, no global settings).
"""

from ._version import __version__
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import (
    SHAKESPEARE_SHA256,
    SHAKESPEARE_URL,
    CorpusMismatchError,
    DownloadError,
    data_dir,
    download,
    get_batch,
    iter_eval_batches,
    load_shakespeare,
    load_text,
    train_val_split,
)
from .evaluation import EvalResult, estimate_loss, evaluate
from .kvcache import KVCache
from .model import (
    GPT,
    PRESETS,
    BigramConfig,
    BigramLanguageModel,
    Block,
    FeedForward,
    GPTConfig,
    Head,
    MultiHeadAttention,
    build_model,
    get_preset,
)
from .plotting import LivePlotCallback, plot_attention, plot_history
from .sampling import default_prompt, generate, sample_text, stream_text, top_k_filter, top_p_filter
from .tokenizer import CharTokenizer
from .train import (
    TRAIN_PRESETS,
    History,
    TrainConfig,
    TrainingDivergedError,
    TrainState,
    get_lr,
    get_train_preset,
    train,
)
from .utils import atomic_write, is_quick, pick, pick_device, set_seed
from .widgets import SamplingPlayground, sampling_playground

__all__ = [
    "__version__",
    "GPT",
    "PRESETS",
    "BigramConfig",
    "BigramLanguageModel",
    "Block",
    "FeedForward",
    "GPTConfig",
    "Head",
    "KVCache",
    "MultiHeadAttention",
    "build_model",
    "get_preset",
    "generate",
    "default_prompt",
    "sample_text",
    "stream_text",
    "top_k_filter",
    "top_p_filter",
    "SHAKESPEARE_SHA256",
    "SHAKESPEARE_URL",
    "CharTokenizer",
    "DownloadError",
    "CorpusMismatchError",
    "atomic_write",
    "data_dir",
    "download",
    "get_batch",
    "is_quick",
    "iter_eval_batches",
    "load_shakespeare",
    "load_text",
    "pick",
    "pick_device",
    "set_seed",
    "train_val_split",
    "TRAIN_PRESETS",
    "CheckpointError",
    "LivePlotCallback",
    "plot_attention",
    "plot_history",
    "EvalResult",
    "History",
    "TrainConfig",
    "TrainState",
    "TrainingDivergedError",
    "estimate_loss",
    "evaluate",
    "get_lr",
    "get_train_preset",
    "load_checkpoint",
    "save_checkpoint",
    "train",
    # widgets
    "SamplingPlayground",
    "sampling_playground",
]
