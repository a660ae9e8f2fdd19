"""Old import path of `paralm.stats.bootstrap` (moved so that the judge need not import paralm.eval).

Bound to the moved module itself, so attribute patches through either path reach the same functions."""

import sys

from paralm.stats import bootstrap

sys.modules[__name__] = bootstrap
