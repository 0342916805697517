import sys

from tests.external.clients import main

sys.exit(main())
