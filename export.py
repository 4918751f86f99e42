r"""Export the MASS inference graph to MindIR for deployment (MindSpore Lite, Ascend 310, serving).

The graph maps source ids (batch_size, seq_length) int32, padded with <pad> = 0, to generated ids
(batch_size, max_decode_length) int32: the encoder, then greedy decoding for a fixed number of steps
without a key/value cache, <pad> after </s> (see src/transformer/export.py). eval.py does not use it: it
decodes with the cached beam search. Batch size and lengths are fixed in the exported graph.

Example:
    python export.py --config config/config.json --ckpt_file runs/x/last5.npz --file_name mass \
        --batch_size 1 --seq_length 64
    # then: graph = mindspore.nn.GraphCell(mindspore.load("mass.mindir")); ids = graph(src_ids)

Config keys can be overridden as --section.key=value; a null model_config.vocab_size is taken from
the weights.
"""

import argparse
import logging
import sys

import numpy as np

from config.config import MassConfig
from src.utils.cli import parse_with_overrides, run_cli
from src.utils.device import DEVICE_TARGETS, setup_device
from src.utils.errors import UserError

logger = logging.getLogger("export")
EMBEDDING_TABLE = "embedding.table"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None,
                   help="JSON config of the model (see config/); default: the config stored in the checkpoint (a "
                        ".ckpt of train.py, an .npz of weights_average.py). A given one must describe the same model")
    p.add_argument("--ckpt_file", required=True, help="weights: a training .ckpt or a weights_average.py .npz")
    p.add_argument("--file_name", default="mass", help="output name (.mindir is appended if missing)")
    p.add_argument("--file_format", default="MINDIR", help="only MINDIR (AIR and ONNX are not supported)")
    p.add_argument("--batch_size", type=int, default=1, help="batch size fixed in the graph")
    p.add_argument("--seq_length", type=int, default=0,
                   help="source length fixed in the graph (default: model_config.max_position_embeddings)")
    p.add_argument("--max_decode_length", type=int, default=0,
                   help="decoding steps (default: decode_config max_decode_length_a * seq_length + "
                        "max_decode_length_b, at most max_position_embeddings)")
    p.add_argument("--device_target", "--platform", default="CPU", choices=DEVICE_TARGETS)
    p.add_argument("--device_id", type=int, default=None, help="default: $DEVICE_ID or 0")
    args, args.overrides = parse_with_overrides(p, argv)
    return args


def load_config(args, weights: dict, state: dict) -> MassConfig:
    from src.evaluation.api import resolve_config

    cfg = resolve_config(state, args.ckpt_file, args.config, args.overrides, args.config)  # checked against it
    if EMBEDDING_TABLE not in weights:
        raise UserError(f"{args.ckpt_file}: no {EMBEDDING_TABLE} entry: not MASS model weights")
    rows = weights[EMBEDDING_TABLE].shape[0]
    if cfg.model_config.vocab_size is None:
        cfg = cfg.replace("model_config", vocab_size=int(rows))
    return cfg


def graph_sizes(args, cfg: MassConfig) -> tuple[int, int, int]:
    """``(batch_size, seq_length, decode steps)`` checked against the position table."""
    from src.transformer.search_settings import SearchSettings

    max_positions = cfg.model_config.max_position_embeddings
    seq_length = args.seq_length or max_positions
    decode = cfg.decode_config
    steps = args.max_decode_length or int(
        SearchSettings.from_decode_config(decode).max_lengths([seq_length], max_positions)[0])
    if args.batch_size < 1:
        raise UserError(f"--batch_size must be positive, got {args.batch_size}")
    for name, value in (("--seq_length", seq_length), ("--max_decode_length", steps)):
        if not 1 <= value <= max_positions:
            raise UserError(f"{name} must lie in 1..{max_positions} (max_position_embeddings), got {value}")
    return args.batch_size, seq_length, steps


def main(argv=None):
    args = parse_args(argv)
    from src.transformer.export import check_format

    check_format(args.file_format)  # before the slow imports and the model
    from src.evaluation.api import build_model
    from src.transformer.export import GreedyDecoder, export_mindir, mindir_path
    from src.utils.checkpoint import read_model_file
    from src.utils.fileio import check_output_file

    weights, state = read_model_file(args.ckpt_file)
    check_output_file(mindir_path(args.file_name), "--file_name")
    cfg = load_config(args, weights, state)
    batch_size, seq_length, steps = graph_sizes(args, cfg)
    setup_device(args.device_target, args.device_id, mode="graph", distributed=False)
    model = build_model(cfg, cfg.model_config.vocab_size, weights, args.ckpt_file)  # the one way, in eval mode
    network = GreedyDecoder(model, steps)
    example = np.full((batch_size, seq_length), 0, dtype=np.int32)  # the values do not matter, only shape
    export_mindir(network, example, args.file_name)
    logger.info("graph: src_ids (%d, %d) int32 -> ids (%d, %d) int32", batch_size, seq_length, batch_size, steps)


if __name__ == "__main__":
    sys.exit(run_cli(main))
