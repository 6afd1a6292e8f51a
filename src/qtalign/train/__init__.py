"""The training stage: LoRA tuning on question-translation pairs (output-only loss, resumable checkpoints)."""

from qtalign.runs.train import TRAIN_OUTPUTS, TRAIN_RECORD
from qtalign.train.checkpoint import load_checkpoint, load_trainable_state, save_checkpoint, trainable_state
from qtalign.train.encode import (
    IGNORE,
    Example,
    collate,
    encode_pairs,
    length_grouped_batches,
    output_tokens,
    pieces,
    split_val,
)
from qtalign.train.loss import VOCAB_CHUNK, output_loss
from qtalign.train.pairs import read_pairs, refuse_test_data
from qtalign.train.passes import accumulate_step, all_reduce_step, validation_loss
from qtalign.train.plots import plot_losses
from qtalign.train.prepare import add_lora, make_scheduler, micro_batch_sizer
from qtalign.train.record import describe_training_precision, resolve_train_template, train_record
from qtalign.train.run import TrainResult, run
from qtalign.train.settings import (
    RESUME_IGNORES,
    TrainSettings,
    command_settings,
    settings_from,
    settings_key,
)

__all__ = [
    "IGNORE", "RESUME_IGNORES", "TRAIN_OUTPUTS", "TRAIN_RECORD", "VOCAB_CHUNK", "Example", "TrainResult",
    "TrainSettings", "accumulate_step", "add_lora", "all_reduce_step", "collate", "command_settings",
    "describe_training_precision", "encode_pairs", "length_grouped_batches", "load_checkpoint",
    "load_trainable_state", "make_scheduler", "micro_batch_sizer", "output_loss", "output_tokens", "pieces",
    "plot_losses", "read_pairs", "refuse_test_data", "resolve_train_template", "run", "save_checkpoint",
    "settings_from", "settings_key", "split_val", "train_record", "trainable_state", "validation_loss",
]
