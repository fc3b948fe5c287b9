"""The documentation's sources: every public name in the API reference, and
gallery scripts that sphinx-gallery can run. Building the HTML needs the
``docs`` extra and is not done here; ``make -C docs html`` does it.

The tests with ``built`` in their names read the built site in docs/_build/html
and are skipped when there is none; .ci/run runs them after building it
(``python -m pytest tests/test_docs.py -k built``).
"""

import ast
import html.parser
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
BUILT = DOCS / "_build" / "html"
# sphinx-gallery's own pattern for the lines it leaves out of the page.
IGNORE_BLOCK = re.compile(
    r"# sphinx_gallery_start_ignore(?:[\s\S]*?)# sphinx_gallery_end_ignore\n?"
)


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
    # The quick documentation build (CI) relies on every script reading it,
    # in lines that sphinx-gallery leaves out of the page the reader sees.
    assert "SKVAE_DOCS_QUICK" in source, f"{path.name} ignores SKVAE_DOCS_QUICK"
    assert source.count("# sphinx_gallery_start_ignore") == source.count(
        "# sphinx_gallery_end_ignore"
    ), f"{path.name}: unbalanced sphinx_gallery_start_ignore/end_ignore"
    shown = IGNORE_BLOCK.sub("", source)
    assert "SKVAE_DOCS_QUICK" not in shown and "os.environ" not in shown, (
        f"{path.name}: the quick-build switch must sit between "
        "'# sphinx_gallery_start_ignore' and '# sphinx_gallery_end_ignore'"
    )


def test_ignore_block_pattern_hides_only_the_block():
    source = (
        "a = 1\n# sphinx_gallery_start_ignore\nimport os\n"
        "# sphinx_gallery_end_ignore\nb = 2\n"
    )
    assert IGNORE_BLOCK.sub("", source) == "a = 1\nb = 2\n"


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


# -- A quick build and a full build never share gallery outputs ---------------


def load_gallery_mode():
    spec = importlib.util.spec_from_file_location(
        "gallery_mode", DOCS / "sphinxext" / "gallery_mode.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_gallery_run(gallery_dir, mode):
    """What sphinx-gallery leaves behind: a figure and the md5 that skips a rerun."""
    images = gallery_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    (images / "sphx_glr_plot_x_001.png").write_text(f"figure of the {mode} build")
    (gallery_dir / "plot_x.py.md5").write_text("0123")


def test_full_build_after_quick_build_reruns_the_gallery(tmp_path):
    gallery_mode = load_gallery_mode()
    gallery = tmp_path / "auto_examples"
    assert gallery_mode.invalidate_other_mode(gallery, "quick") is False
    fake_gallery_run(gallery, "quick")
    # A second quick build keeps the cache: nothing to rerun.
    assert gallery_mode.invalidate_other_mode(gallery, "quick") is False
    assert (gallery / "plot_x.py.md5").is_file()
    # A full build finds no figure and no md5 of the quick one.
    assert gallery_mode.invalidate_other_mode(gallery, "full") is True
    assert not (gallery / "plot_x.py.md5").exists()
    assert not (gallery / "images").exists()
    fake_gallery_run(gallery, "full")
    # And back: a quick build does not show the full build's figures either.
    assert gallery_mode.invalidate_other_mode(gallery, "quick") is True
    assert not (gallery / "images").exists()
    assert (gallery / gallery_mode.STAMP).read_text().strip() == "quick"


def test_gallery_without_a_mode_record_is_not_trusted(tmp_path):
    gallery_mode = load_gallery_mode()
    gallery = tmp_path / "auto_examples"
    fake_gallery_run(gallery, "unknown")
    assert gallery_mode.invalidate_other_mode(gallery, "full") is True
    assert not (gallery / "plot_x.py.md5").exists()


def test_gallery_mode_names_and_bad_mode():
    gallery_mode = load_gallery_mode()
    assert gallery_mode.build_mode(True) == "quick"
    assert gallery_mode.build_mode(False) == "full"
    with pytest.raises(ValueError, match="'quick' or 'full'"):
        gallery_mode.invalidate_other_mode(DOCS / "no_such_gallery", "fast")


def test_conf_invalidates_the_gallery_it_configures():
    # conf.py needs sphinx to import; read it instead. The folder checked must
    # be the folder sphinx-gallery writes, and checked before it runs.
    tree = ast.parse((DOCS / "conf.py").read_text())
    assignments = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    gallery_conf = assignments["sphinx_gallery_conf"]
    keys = [key.value for key in gallery_conf.keys]
    gallery_dirs = gallery_conf.values[keys.index("gallery_dirs")]
    assert isinstance(gallery_dirs, ast.Name) and gallery_dirs.id == "GALLERY_DIR"
    calls = [
        (index, node)
        for index, statement in enumerate(tree.body)
        for node in ast.walk(statement)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "invalidate_other_mode"
    ]
    assert len(calls) == 1
    index, call = calls[0]
    assert "GALLERY_DIR" in ast.unparse(call.args[0])
    assert "QUICK" in ast.unparse(call.args[1])
    conf_index = next(
        i
        for i, statement in enumerate(tree.body)
        if isinstance(statement, ast.Assign)
        and getattr(statement.targets[0], "id", None) == "sphinx_gallery_conf"
    )
    assert index < conf_index


# -- The built site: self-contained, math included ----------------------------


class ResourceFinder(html.parser.HTMLParser):
    """The URLs a page loads by itself: scripts, stylesheets, images, frames.

    Links the reader may follow (``<a href>``) are not loaded and not listed.
    """

    LOADED = {
        "script": ("src",),
        "img": ("src", "srcset"),
        "iframe": ("src",),
        "source": ("src", "srcset"),
        "video": ("src", "poster"),
        "audio": ("src",),
        "embed": ("src",),
        "object": ("data",),
    }

    def __init__(self):
        super().__init__()
        self.resources = []
        self.inline_styles = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in self.LOADED.get(tag, ()):
            if attrs.get(name):
                self.resources.append((tag, attrs[name]))
        if tag == "link" and attrs.get("href"):
            rel = set((attrs.get("rel") or "").lower().split())
            if rel & {"stylesheet", "preload", "modulepreload", "icon", "prefetch"}:
                self.resources.append((tag, attrs["href"]))
        if attrs.get("style"):
            self.inline_styles.append(attrs["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.inline_styles.append(data)


REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
REMOTE_IN_CSS = re.compile(
    r"(?:url\(\s*['\"]?|@import\s+['\"])\s*(?:https?:)?//", re.IGNORECASE
)


def remote_resources(text):
    """The resources of one HTML page that would be fetched from another host."""
    finder = ResourceFinder()
    finder.feed(text)
    remote = [
        f"<{tag}> {url}"
        for tag, url in finder.resources
        if any(REMOTE.match(part) for part in url.split(","))
    ]
    remote += [
        f"style: {style.strip()[:80]}"
        for style in finder.inline_styles
        if REMOTE_IN_CSS.search(style)
    ]
    return remote


def test_remote_resources_finder():
    page = (
        '<html><head><script src="https://cdn.example/mathjax.js"></script>'
        '<script src="_static/local.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css">'
        '<link rel="canonical" href="https://example.org/page.html">'
        "<style>@import 'https://x.example/a.css';</style></head>"
        '<body><a href="https://example.org">a link is fine</a>'
        '<img src="images/local.png"><img srcset="a.png 1x, http://b/c.png 2x">'
        "</body></html>"
    )
    assert remote_resources(page) == [
        "<script> https://cdn.example/mathjax.js",
        "<link> //fonts.example/css",
        "<img> a.png 1x, http://b/c.png 2x",
        "style: @import 'https://x.example/a.css';",
    ]
    assert remote_resources('<script src="../_static/x.js"></script>') == []


def built_pages():
    if not (BUILT / "index.html").is_file():
        pytest.skip("no built documentation: run `make -C docs html` first")
    return sorted(BUILT.rglob("*.html"))


def test_built_pages_load_nothing_from_another_host():
    offenders = {}
    for page in built_pages():
        remote = remote_resources(page.read_text(encoding="utf-8"))
        if remote:
            offenders[str(page.relative_to(BUILT))] = remote
    assert not offenders, f"pages that need the network to render: {offenders}"


def test_built_stylesheets_load_nothing_from_another_host():
    built_pages()
    offenders = [
        str(path.relative_to(BUILT))
        for path in sorted((BUILT / "_static").rglob("*.css"))
        if REMOTE_IN_CSS.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not offenders, f"stylesheets that fetch from another host: {offenders}"


def test_built_math_pages_carry_their_own_mathjax():
    math_pages = []
    for page in built_pages():
        text = page.read_text(encoding="utf-8")
        if 'class="math' not in text:
            continue
        math_pages.append(page)
        finder = ResourceFinder()
        finder.feed(text)
        mathjax = [url for tag, url in finder.resources if "mathjax" in url.lower()]
        name = page.relative_to(BUILT)
        assert len(mathjax) == 1, f"{name}: expected one MathJax script, {mathjax}"
        script = (page.parent / mathjax[0].split("?")[0]).resolve()
        assert script.is_file() and script.is_relative_to(BUILT.resolve()), (
            f"{name}: MathJax script {mathjax[0]} is not a file of the built site"
        )
        # The CommonHTML output needs its fonts next to it.
        fonts = script.parent / "output" / "chtml" / "fonts" / "woff-v2"
        assert any(fonts.glob("*.woff")), f"{name}: no MathJax fonts in {fonts}"
    # The user guide has formulas; a build that finds none lost them.
    assert len(math_pages) >= 5, [str(page) for page in math_pages]


def test_built_gallery_hides_the_quick_build_switch():
    pages = [page for page in built_pages() if "auto_examples" in page.parts]
    assert pages, "the built site has no gallery pages"
    shown = [
        str(page.relative_to(BUILT))
        for page in pages
        if "SKVAE_DOCS_QUICK" in page.read_text(encoding="utf-8")
    ]
    assert not shown, f"gallery pages that show the quick-build switch: {shown}"


def test_comparison_page_is_linked_and_names_every_peer():
    index = (DOCS / "index.rst").read_text()
    toctree = index[index.index(".. toctree::") :]
    assert re.search(r"^\s+comparison$", toctree, re.MULTILINE)
    page = (DOCS / "comparison.rst").read_text()
    for peer in ("PCA", "umap-learn", "skorch", "pyod", "pythae"):
        assert peer in page, f"docs/comparison.rst does not mention {peer}"
    # What skvae lacks is said on the page, not left for users to find.
    assert "What skvae lacks" in page
