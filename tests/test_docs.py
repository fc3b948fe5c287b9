"""The documentation's sources: every public name in the API reference, and
gallery scripts that sphinx-gallery can run. Building the HTML needs the
``docs`` extra and is not done here; ``make -C docs html`` does it."""

import ast
import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

import skvae

DOCS = Path(__file__).resolve().parents[1] / "docs"
API = DOCS / "api.rst"
EXAMPLES = DOCS / "examples"
GALLERY_SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))


def public_names():
    """``skvae.X`` for the top-level names and ``skvae.sub.Y`` for subpackages."""
    names = set()
    for name in skvae.__all__:
        if name == "__version__":
            continue
        value = getattr(skvae, name)
        if isinstance(value, ModuleType):
            module = importlib.import_module(f"skvae.{name}")
            names.update(f"skvae.{name}.{member}" for member in module.__all__)
        else:
            names.add(f"skvae.{name}")
    return names


def autosummary_entries(text):
    """Fully qualified names listed in the ``autosummary`` blocks of ``text``.

    Each entry is qualified by the ``currentmodule`` in force where it appears.
    """
    names = set()
    module = None
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(".. currentmodule::"):
            module = stripped.split("::", 1)[1].strip()
            in_block = False
        elif stripped.startswith(".. autosummary::"):
            in_block = True
        elif in_block and stripped:
            if not line[0].isspace():
                in_block = False
            elif not stripped.startswith(":"):
                names.add(f"{module}.{stripped}" if module else stripped)
    return names


def test_autosummary_entries_parser():
    text = (
        ".. currentmodule:: pkg\n\n"
        ".. autosummary::\n   :toctree: generated/\n\n   A\n   b\n\n"
        "Prose after the block\n\n"
        ".. currentmodule:: pkg.sub\n\n"
        ".. autosummary::\n\n   c\n"
    )
    assert autosummary_entries(text) == {"pkg.A", "pkg.b", "pkg.sub.c"}


def test_public_names_include_subpackage_members():
    names = public_names()
    assert "skvae.VAETransformer" in names
    assert "skvae.analysis.encoder_jacobian" in names
    assert "skvae.analysis" not in names and "skvae.__version__" not in names


def test_every_public_name_is_in_the_api_reference():
    documented = autosummary_entries(API.read_text())
    missing = sorted(public_names() - documented)
    assert not missing, f"public names missing from docs/api.rst: {missing}"


def test_api_reference_lists_only_public_names():
    documented = autosummary_entries(API.read_text())
    stale = sorted(documented - public_names())
    assert not stale, f"docs/api.rst lists names that are not public: {stale}"


def test_gallery_has_scripts_and_a_readme():
    assert (EXAMPLES / "README.txt").is_file()
    assert len(GALLERY_SCRIPTS) >= 5


@pytest.mark.parametrize("path", GALLERY_SCRIPTS, ids=lambda path: path.name)
def test_gallery_script_is_valid(path):
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.name} needs a docstring: sphinx-gallery's page text"
    # sphinx-gallery takes the page title from an rst heading at the top.
    lines = docstring.strip().splitlines()
    heading = next(
        (
            i
            for i in range(1, len(lines))
            if re.fullmatch(r"=+", lines[i]) and lines[i - 1].strip()
        ),
        None,
    )
    assert heading is not None and len(lines[heading]) >= len(
        lines[heading - 1].strip()
    ), f"{path.name}: the docstring must start with a '=' underlined title"
    # The quick documentation build (CI) relies on every script reading it.
    assert "SKVAE_DOCS_QUICK" in source, f"{path.name} ignores SKVAE_DOCS_QUICK"


def test_gallery_order_lists_every_script():
    spec = importlib.util.spec_from_file_location(
        "gallery_order", DOCS / "sphinxext" / "gallery_order.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module.GALLERY_ORDER) == [path.name for path in GALLERY_SCRIPTS]
    key = module.GalleryOrder(src_dir="")
    ordered = sorted([*module.GALLERY_ORDER, "plot_zzz_new.py"], key=key)
    assert ordered[0] == "plot_seed_experiment.py"
    assert ordered[-1] == "plot_zzz_new.py"
