"""``python -m dcmon.cli``: the same as the ``dcmon`` console command."""
import sys

from dcmon.cli import main

sys.exit(main())
