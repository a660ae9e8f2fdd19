"""Implicit QA pair generation (`paralm data generate`): inputs, backends, prompt and template, QA filters, journal, output.

`paralm.creation.generate` was one module (the command) with its helpers as prefixed siblings; the helpers are now the
modules of this package and the command is `paralm.creation.generate.command`. The command's names (`main`, ...) still
import from `paralm.creation.generate` (paralm.moved_modules.command_names); old helper paths such as
`paralm.creation.gen_config` resolve through paralm.moved_modules.MOVED.
"""

from paralm.moved_modules import command_names

__getattr__ = command_names(__name__)
