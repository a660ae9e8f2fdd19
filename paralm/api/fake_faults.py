"""Old import path of `paralm.api.fake.faults` (the test server moved out of the client package).

Bound to the moved module itself, so attribute patches through either path reach the same objects."""

import sys

from paralm.api.fake import faults

sys.modules[__name__] = faults
