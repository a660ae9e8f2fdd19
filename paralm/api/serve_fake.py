"""Old import path of `paralm.api.fake.serve` (the test server moved out of the client package).

Bound to the moved module itself, so attribute patches through either path reach the same objects."""

import sys

from paralm.api.fake import serve

if __name__ == "__main__":  # `python -m paralm.api.serve_fake` keeps working
    serve.main()
else:
    sys.modules[__name__] = serve
