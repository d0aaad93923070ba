"""``python -m oracle``: see ``oracle.cli``."""
import os
import sys
from importlib import metadata

# Cheaper XLA compilation for the many tiny programs of a check (about 3x faster on CPU; the
# numbers computed do not depend on it beyond rounding). Only for the jaxlib versions these
# flags were tried on: XLA aborts on a flag it does not know (jaxlib 0.11 dropped one).
# FUNCNN_ORACLE_FAST_COMPILE=0 keeps XLA's defaults; flags already in XLA_FLAGS win.
FAST_COMPILE = {"0.10": ["--xla_backend_optimization_level=0",
                         "--xla_cpu_use_fusion_emitters=false"]}


def _jaxlib_minor():
    try:
        return ".".join(metadata.version("jaxlib").split(".")[:2])
    except metadata.PackageNotFoundError:
        return None


if os.environ.get("FUNCNN_ORACLE_FAST_COMPILE", "1") != "0":
    extra = FAST_COMPILE.get(_jaxlib_minor(), [])
    current = os.environ.get("XLA_FLAGS", "")
    keep = [f for f in extra if f.split("=")[0] not in current]
    if keep:
        os.environ["XLA_FLAGS"] = " ".join([current] + keep).strip()

from oracle.cli import main  # noqa: E402 (after the flags: XLA reads them at start-up)

sys.exit(main())
