"""Sphinx configuration of the skvae documentation.

Build with ``make -C docs html`` (see docs/Makefile). Two environment variables
change the build:

``SKVAE_DOCS_OFFLINE=1``
    Do not fetch the intersphinx inventories of Python, NumPy, scikit-learn,
    PyTorch and matplotlib. A failed fetch is a warning, which ``-W`` turns into
    an error, so a machine without internet access (CI here) needs it; links to
    those projects then render as plain code instead of links.

``SKVAE_DOCS_QUICK=1``
    Read by the gallery scripts: tiny ``max_iter`` and data sizes, so every
    example still runs and every page still renders, in a fraction of the time.
    The figures are then not meaningful. The gallery remembers which mode
    wrote it (sphinxext/gallery_mode.py): switching mode reruns every example,
    so a full build never shows a quick build's figures, nor the reverse.

Math is rendered in the reader's browser by a copy of MathJax that the build
puts into ``_static/mathjax`` (the ``sphinx-mathjax-offline`` package of the
``docs`` extra), so the pages need no CDN and render offline.
"""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docstrings import prepare_docstring

import skvae

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
OFFLINE = os.environ.get("SKVAE_DOCS_OFFLINE", "0") == "1"
QUICK = os.environ.get("SKVAE_DOCS_QUICK", "0") == "1"

# -- Project -------------------------------------------------------------------

project = "skvae"
author = "The skvae developers"
copyright = "The skvae developers"
version = release = skvae.__version__

# -- Extensions ----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax 3 from the package, copied into _static/mathjax: no CDN.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
# Backquoted names (`VAETransformer`) are Python objects, as in scikit-learn.
default_role = "obj"

# -- autodoc / autosummary / numpydoc ------------------------------------------

autosummary_generate = True
# Own members only: the methods inherited from scikit-learn (get_params,
# set_output, ...) have docstrings that link into scikit-learn's user guide,
# which an offline build cannot resolve; api.rst names them instead.
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
# The class template lists the methods itself; numpydoc would add a second,
# toctree-less table that autosummary warns about.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Types stay plain text: numpydoc's links for them ("array-like", "bool") point
# into the NumPy and Python inventories, which an offline build does not have.
numpydoc_xref_param_type = False

# -- intersphinx ---------------------------------------------------------------

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
}
intersphinx_timeout = 10
if OFFLINE:
    # Nothing to fetch: references to these projects stay unresolved, which
    # Sphinx does not warn about (nitpicky is off), and render as code.
    intersphinx_mapping = {}

# -- sphinx-gallery ------------------------------------------------------------

# The gallery's order lives in sphinxext/gallery_order.py.
sys.path.insert(0, str(DOCS / "sphinxext"))

from gallery_mode import build_mode, invalidate_other_mode  # noqa: E402

GALLERY_DIR = "auto_examples"
invalidate_other_mode(DOCS / GALLERY_DIR, build_mode(QUICK))

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": GALLERY_DIR,
    "filename_pattern": r"/plot_",
    # A failing example fails the build, as a failing test would.
    "abort_on_example_error": True,
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("skvae",),
    "reference_url": {"skvae": None},
    "within_subsection_order": "gallery_order.GalleryOrder",
    "download_all_examples": False,
    # The timing page would be written into docs/ itself, outside the ignored
    # build folders; each example page states its own running time.
    "write_computation_times": False,
    "min_reported_time": 1,
    "remove_config_comments": True,
    "show_memory": False,
    "matplotlib_animations": False,
}

# The examples run in this process: keep matplotlib off any display and the
# examples' own warnings (convergence, collapse) out of Sphinx's warning stream.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", category=UserWarning, module="matplotlib")

# -- The performance page --------------------------------------------------------

BENCHMARK_RESULTS = ROOT / "benchmarks" / "results"
BENCHMARK_README = ROOT / "benchmarks" / "README.md"
GENERATED = DOCS / "generated"


def write_benchmark_includes():
    """Write ``generated/benchmarks.inc``: includes of the committed results.

    The performance page includes this file, so the tables shown are always the
    ones that ``benchmarks/`` wrote, never numbers copied by hand.
    """
    lines = []
    # The summary first, then the detailed tables it digests.
    results = (
        sorted(
            BENCHMARK_RESULTS.glob("*.md"),
            key=lambda path: (path.name != "summary.md", path.name),
        )
        if BENCHMARK_RESULTS.is_dir()
        else []
    )
    if BENCHMARK_README.is_file():
        lines += [
            ".. include:: /../benchmarks/README.md",
            "   :parser: myst_parser.sphinx_",
            "",
        ]
    for path in results:
        lines += [
            f".. include:: /../benchmarks/results/{path.name}",
            "   :parser: myst_parser.sphinx_",
            "",
        ]
    if not lines:
        lines = [
            ".. note::",
            "",
            "   No benchmark results are committed yet. Run the scripts in",
            "   ``benchmarks/`` to produce them.",
            "",
        ]
    GENERATED.mkdir(exist_ok=True)
    target = GENERATED / "benchmarks.inc"
    text = "\n".join(lines)
    # Rewrite only on change, so that Sphinx does not rebuild the page for nothing.
    if not target.is_file() or target.read_text() != text:
        target.write_text(text)


write_benchmark_includes()

# -- MyST (the markdown of benchmarks/) -----------------------------------------

myst_enable_extensions = ["colon_fence"]
# The markdown files are included into rst pages, never built on their own.
suppress_warnings = ["myst.header"]

# -- HTML ----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# Pages without a section of their own need no left sidebar; the examples get
# the width for their figures and tables.
html_sidebars = {
    "index": [],
    "getting_started": [],
    "performance": [],
    "comparison": [],
    "changelog": [],
    "auto_examples/plot_*": [],
}
html_show_sourcelink = False


# -- The command line's help, for the getting-started page ----------------------


def write_demo_help():
    """Write ``generated/demo_help.txt``, the output of ``skvae demo --help``."""
    environment = dict(os.environ, COLUMNS="80")
    result = subprocess.run(
        [sys.executable, "-m", "skvae", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    GENERATED.mkdir(exist_ok=True)
    target = GENERATED / "demo_help.txt"
    if not target.is_file() or target.read_text() != result.stdout:
        target.write_text(result.stdout)


write_demo_help()


# -- Docstring fixes ------------------------------------------------------------

# In a numpydoc type such as ``ndarray of shape (n_features_in_,)``, a name that
# ends in an underscore is an rst reference to an undefined target, an error.
# scikit-learn writes such names in backquotes; until every docstring here
# does, quote them on the fly. Only the type, after " : ", is touched.
_TYPE_LINE = re.compile(r"^(\s*\*{0,2}\w+ : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?![`\w])")


def quote_attribute_names_in_types(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        match = _TYPE_LINE.match(line)
        if match:
            head, type_ = match.groups()
            lines[i] = head + _TRAILING_UNDERSCORE.sub(r"``\1``", type_)


# A constant re-exported by a subpackage (skvae.datasets.FLOW_FEATURE_NAMES) has
# its docstring next to its definition in a private module, where autodoc does
# not look: it would show the docstring of ``tuple`` instead. Find it there.


def attribute_docstring_from_definition(app, what, name, obj, options, lines):
    if what != "data" or lines != _docstring_lines(type(obj).__doc__):
        return
    package, attribute = name.rsplit(".", 1)
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith(package + ".") or module is None:
            continue
        if getattr(module, attribute, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except PycodeError:
            continue
        if ("", attribute) in docs:
            lines[:] = list(docs[("", attribute)])
            return


def _docstring_lines(docstring):
    return prepare_docstring(docstring) if docstring else []


def setup(app):
    # Before numpydoc (priority 500) turns the sections into rst.
    app.connect("autodoc-process-docstring", attribute_docstring_from_definition, 300)
    app.connect("autodoc-process-docstring", quote_attribute_names_in_types, 400)
