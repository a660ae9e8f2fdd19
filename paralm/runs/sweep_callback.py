"""Old import path of `callbacks.sweep_trial` (all Lightning callbacks live in callbacks/).

Configs and users' code name the old path. It is bound to the moved module itself (not a copy of its
names), so attribute patches through either path reach the same objects."""

import sys

from callbacks import sweep_trial

sys.modules[__name__] = sweep_trial
