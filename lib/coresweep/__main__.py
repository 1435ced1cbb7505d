import sys

from coresweep.cli import main

sys.exit(main())
