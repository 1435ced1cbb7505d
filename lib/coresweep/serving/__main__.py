"""`python -m coresweep.serving SERVE.json`: run the server a ServerProcess asked for."""

import sys

from coresweep.serving.config import ServeConfig
from coresweep.serving.server import serve

serve(ServeConfig.read(sys.argv[1]))
