import subprocess
import sys

import pytest

import skvae


def test_version():
    assert isinstance(skvae.__version__, str) and skvae.__version__[0].isdigit()


def test_import_is_light():
    # A fresh interpreter: importing skvae must not pull torch or matplotlib.
    code = (
        "import sys, skvae; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'sklearn') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_lazy_names_resolve():
    from skvae._vae import VAETransformer

    assert skvae.VAETransformer is VAETransformer
    for name in skvae.__all__:
        assert getattr(skvae, name) is not None
    assert set(skvae.__all__) <= set(dir(skvae))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        skvae.nope  # noqa: B018
