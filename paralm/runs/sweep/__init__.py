"""W&B sweeps run locally: spec, trial state, metrics, result tables, the `paralm sweep` command.

`paralm.runs.sweep` was one module (the command) with its helpers as prefixed siblings; the helpers are now the
modules of this package and the command is `paralm.runs.sweep.command`. The command's names (`main`, ...) still
import from `paralm.runs.sweep` (paralm.moved_modules.command_names); old helper paths such as
`paralm.runs.sweep_spec` resolve through paralm.moved_modules.MOVED.
"""

from paralm.moved_modules import command_names

__getattr__ = command_names(__name__)
