import sys

from cinepatch.cli import main

sys.exit(main())
