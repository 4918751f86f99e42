"""Column names and MindRecord schemas, declared once.

Writers, loaders, the model's train step and the tests import these names; nothing renames columns.

Stored columns (what the builders write):

========================  =====================================================================
``ids``                   monolingual sentence: BPE token ids followed by ``</s>`` (pre-training)
``source_ids``            pair source: BPE token ids followed by ``</s>`` (fine-tuning, test)
``target_ids``            pair target: BPE token ids followed by ``</s>``
``index``                 the example's 0-based line number in its input (over all input files for
                          pre-training); seeds dynamic masking and noise, and lets evaluation put
                          hypotheses back next to the references
``source_length``         length of ``source_ids`` before any truncation (test splits keep long inputs)
========================  =====================================================================

Batch columns (what the loader yields to the model), all int32 and right-padded with ``<pad>`` = 0:

========================  =====================================================================
``src_ids``               (batch, src_len) encoder input
``dec_in_ids``            (batch, tgt_len) decoder input (previous original token at each step)
``dec_positions``         (batch, tgt_len) position id of each decoder token (absolute for MASS)
``tgt_ids``               (batch, tgt_len) labels; ``<pad>`` positions carry no loss
========================  =====================================================================

Padding masks are derived (``src_ids != PAD``, ``tgt_ids != PAD``), never stored, so they cannot
disagree with the ids.
"""

# stored
IDS = "ids"
SOURCE_IDS = "source_ids"
TARGET_IDS = "target_ids"
INDEX = "index"
SOURCE_LENGTH = "source_length"

# batch
SRC_IDS = "src_ids"
DEC_IN_IDS = "dec_in_ids"
DEC_POSITIONS = "dec_positions"
TGT_IDS = "tgt_ids"
BATCH_COLUMNS = (SRC_IDS, DEC_IN_IDS, DEC_POSITIONS, TGT_IDS)
# a batch tuple's column positions, in BATCH_COLUMNS order (batch[SRC] is its source ids)
SRC, DEC_IN, DEC_POS, TGT = range(len(BATCH_COLUMNS))

# ModelZoo's fixed-length, statically masked 6-column layout (news_crawl.py --static_mask)
MZ_SRC = "src"
MZ_SRC_PADDING = "src_padding"
MZ_PREV_OPT = "prev_opt"
MZ_PREV_PADDING = "prev_padding"
MZ_TARGET = "target"
MZ_TGT_PADDING = "tgt_padding"
MODELZOO_COLUMNS = (MZ_SRC, MZ_SRC_PADDING, MZ_PREV_OPT, MZ_PREV_PADDING, MZ_TARGET, MZ_TGT_PADDING)

KIND_MONO = "monolingual"
KIND_PAIR = "pair"
KIND_MODELZOO = "modelzoo_static"


def _int_columns(names, shape=(-1,), dtype="int32"):
    return {name: {"type": dtype, "shape": list(shape)} for name in names}


MONO_SCHEMA = {**_int_columns([IDS]), INDEX: {"type": "int64"}}
PAIR_SCHEMA = {**_int_columns([SOURCE_IDS, TARGET_IDS]), INDEX: {"type": "int64"},
               SOURCE_LENGTH: {"type": "int32"}}
MODELZOO_SCHEMA = _int_columns(MODELZOO_COLUMNS, dtype="int64")

SCHEMAS = {KIND_MONO: MONO_SCHEMA, KIND_PAIR: PAIR_SCHEMA, KIND_MODELZOO: MODELZOO_SCHEMA}
