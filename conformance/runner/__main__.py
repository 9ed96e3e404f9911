"""python -m dothis_conformance: the same as the dothis-conformance command."""

import sys

from .cli import kit_main

sys.exit(kit_main())
