"""`python -m emolive ...` is the `emolive` command."""
import sys

from .cli import main

sys.exit(main())
