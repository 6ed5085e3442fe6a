"""``python -m serving.cli`` runs the modelserving command."""

import sys

from serving.cli import main

sys.exit(main())
