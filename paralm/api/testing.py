"""Old import path of `paralm.api.fake.server` (the test server moved out of the client package).

Bound to the moved module itself, so attribute patches through either path reach the same objects."""

import sys

from paralm.api.fake import server

sys.modules[__name__] = server
