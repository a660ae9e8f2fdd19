"""Old import path of `paralm.formats.predictions` (moved so that the judge need not import paralm.eval).

Bound to the moved module itself, so attribute patches through either path reach the same functions."""

import sys

from paralm.formats import predictions

sys.modules[__name__] = predictions
