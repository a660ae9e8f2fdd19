"""Old import path of `paralm.feature_store_fill` (renamed to say that it fills paralm/data/feature_store.py).

Configs and users' code name the old path. It is bound to the moved module itself (not a copy of its
names), so attribute patches through either path reach the same objects."""

import sys

from paralm import feature_store_fill

sys.modules[__name__] = feature_store_fill
