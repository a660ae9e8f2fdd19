"""Old import path of `paralm.fault.checkpoint_io` (atomic, verified checkpoints).

Saved config.yaml files and users' configs name `paralm.checkpointing.AtomicCheckpointIO`. This name is
bound to the moved module itself (not a copy of its names), so attribute patches through either path
reach the same functions."""

import sys

from paralm.fault import checkpoint_io

sys.modules[__name__] = checkpoint_io
