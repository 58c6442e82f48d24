"""`python -m broker`: run a broker (the same as `logstore serve`)."""

import sys

from broker.server import main

sys.exit(main())
