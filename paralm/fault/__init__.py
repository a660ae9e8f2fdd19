"""Fault tolerance: exit codes (exits), preemption signals (preemption), non-finite steps (nonfinite),
and the choice of checkpoint to resume from (resume). Import from the submodules: this package imports
nothing itself, so `paralm.checkpointing` can use `paralm.fault.exits` without an import cycle."""
