import sys

from idp_eid_bridge.server import main

sys.exit(main())
