"""Keep the quick and the full documentation builds from sharing gallery outputs.

sphinx-gallery reruns an example only when the script's md5 changes, and the
quick switch (``SKVAE_DOCS_QUICK=1``) is an environment variable, not a change
to the script: without this, a full build after a quick one would show the
quick build's 5-epoch figures and numbers under prose about trained models (and
the other way round). conf.py calls `invalidate_other_mode` before
sphinx-gallery runs; it records the mode in the gallery folder and, when the
folder holds another mode's outputs, removes them so that every example runs
again.
"""

import shutil
from pathlib import Path

STAMP = ".skvae_docs_mode"


def build_mode(quick):
    """The name of a build's mode: ``"quick"`` or ``"full"``."""
    return "quick" if quick else "full"


def invalidate_other_mode(gallery_dir, mode):
    """Remove ``gallery_dir`` if another mode wrote it; then record ``mode``.

    Parameters
    ----------
    gallery_dir : path-like
        sphinx-gallery's output folder (``gallery_dirs``), under the docs source.
    mode : {"quick", "full"}
        The mode of the build about to run.

    Returns
    -------
    removed : bool
        Whether outputs of the other mode were removed. A folder without a
        record (written before the record existed) counts as the other mode's:
        its outputs cannot be trusted to be this mode's.
    """
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be 'quick' or 'full', got {mode!r}")
    gallery_dir = Path(gallery_dir)
    stamp = gallery_dir / STAMP
    removed = False
    if gallery_dir.exists():
        recorded = stamp.read_text().strip() if stamp.is_file() else None
        if recorded != mode:
            shutil.rmtree(gallery_dir)
            removed = True
    gallery_dir.mkdir(parents=True, exist_ok=True)
    if not stamp.is_file() or stamp.read_text().strip() != mode:
        stamp.write_text(mode + "\n")
    return removed
