"""The ablation: config, data preparation, per-row fit and evaluation, judging, statistics, report, launchers.

`paralm.runs.ablate` was one module (the command) with its helpers as prefixed siblings; the helpers are now the
modules of this package and the command is `paralm.runs.ablate.command`. The command's names (`main`, ...) still
import from `paralm.runs.ablate` (paralm.moved_modules.command_names); old helper paths such as
`paralm.runs.ablate_config` resolve through paralm.moved_modules.MOVED.
"""

from paralm.moved_modules import command_names

__getattr__ = command_names(__name__)
