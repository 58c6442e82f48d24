"""`python -m logstore.broker`: run a broker (the same as `logstore serve`)."""

import sys

from logstore.broker.server import main

sys.exit(main())
