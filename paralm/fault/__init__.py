"""Fault tolerance: exit codes (exits), atomic verified checkpoints (checkpoint_io), preemption signals
(preemption), non-finite steps (nonfinite), and the choice of checkpoint to resume from (resume). Import
from the submodules: this package imports nothing itself, so importing `paralm.fault.exits` costs nothing."""
