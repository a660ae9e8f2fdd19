"""Old import path of `callbacks.nonfinite` (all Lightning callbacks live in callbacks/).

Configs and users' code name the old path. It is bound to the moved module itself (not a copy of its
names), so attribute patches through either path reach the same objects."""

import sys

from callbacks import nonfinite

sys.modules[__name__] = nonfinite
