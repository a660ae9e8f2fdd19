"""Throughput accounting and memory savers: FLOPs per step, peak FLOP/s per device, chunked cross-entropy."""

from paralm.perf.chunked_ce import chunked_token_losses
from paralm.perf.flops import FlopModel, StepFlops, lm_step_flops, step_flops
from paralm.perf.peak import peak_flops

__all__ = ["FlopModel", "StepFlops", "chunked_token_losses", "lm_step_flops", "peak_flops", "step_flops"]
