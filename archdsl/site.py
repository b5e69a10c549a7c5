"""The mkdocs plugin `archdsl`: a page per model of a project's specs, made at every build.

Consumes spec files (globs in mkdocs.yml) and produces mkdocs `File`s in memory: the pages
`archdsl docs` writes (`pages.site_pages`: diagram inline as SVG, layer table, receptive fields,
totals, warnings) and their index, so no generated copy is kept beside the sources to go stale.

```yaml
plugins:
  - archdsl:
      specs: ["specs/*.arch"]      # globs or directories, relative to mkdocs.yml
      dir: models                  # where the pages go in the site (the default)
      depth: 1                     # draw blocks nested deeper than this as one node
      title: Models                # the index page's title (the default)
      home: README.md              # optional: a Markdown file outside docs_dir as the home page
```

The plugin may be listed more than once, each time with its own specs and `dir`. Links of the
docs' pages (and of `home`) to files outside docs_dir, which work on GitHub but not on a site, go
to `repo_url` or lose their link (`relink`). A spec with an
error, or no graphviz `dot`, fails the build with a `PluginError` saying why (rendered diagnostics
with their source lines, or how to install graphviz), never with a traceback.

Only mkdocs itself loads this module (through the `mkdocs.plugins` entry point); `import archdsl`
and `archdsl check` never do, so mkdocs stays an optional dependency (the `docs` extra).
"""

from __future__ import annotations

import glob
import logging
import os
import posixpath
import re
from typing import Any

from mkdocs.config import config_options as c
from mkdocs.config.base import Config
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.livereload import LiveReloadServer
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

from .errors import RenderError, SourceCache, render
from .pages import INDEX, entries, site_pages
from .pipeline import compile_files, find_specs

log = logging.getLogger("mkdocs.plugins.archdsl")


class ArchdslConfig(Config):
    specs = c.ListOfItems(c.Type(str))
    dir = c.Type(str, default="models")
    depth = c.Optional(c.Type(int))
    title = c.Type(str, default="Models")
    home = c.Optional(c.Type(str))


class ArchdslPlugin(BasePlugin[ArchdslConfig]):
    """Adds a page per model of `specs` under `dir`, and `dir/index.md` listing them."""

    supports_multiple_instances = True

    def __init__(self) -> None:
        self._root = "."
        self._watched: list[str] = []
        # `mkdocs serve` rebuilds on every change, of a page as of a spec: the pages are made
        # again only when a spec or a file one imports has changed since the last build. Each
        # build's (the files read, their modification times, the pages).
        self._cached: tuple[list[str], tuple[object, ...], dict[str, str]] | None = None

    def on_startup(self, *, command: str, dirty: bool) -> None:
        """Defined so that mkdocs keeps this object, and its pages, from one build of
        `mkdocs serve` to the next (instead of a new plugin per build)."""

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig | None:
        self._root = os.path.dirname(os.path.abspath(config.config_file_path or "mkdocs.yml"))
        if self.config.depth is not None and self.config.depth < 0:
            raise PluginError(f"archdsl: depth takes an integer ≥ 0, got {self.config.depth}")
        if not self.config.specs:
            raise PluginError("archdsl: specs is empty; give globs of spec files, e.g. specs/*.arch")
        return config

    def on_files(self, files: Files, /, *, config: MkDocsConfig) -> Files | None:
        folder = self.config.dir.strip("/")
        for name, text in self._pages().items():
            uri = f"{folder}/{name}" if folder else name
            level = InclusionLevel.UNDEFINED if name == INDEX else InclusionLevel.NOT_IN_NAV
            _add(files, File.generated(config, uri, content=text, inclusion=level))
        if self.config.home is not None:
            _add(files, File.generated(config, INDEX, content=self._home(config)))
        return files

    def on_page_markdown(self, markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        """The docs' own pages may link to files outside the docs directory (a spec, a script), as
        they should on GitHub: `relink` turns those links into ones the site can follow."""
        if page.file.generated_by is not None or page.file.abs_src_path is None:
            return markdown
        here = _posix(os.path.relpath(os.path.dirname(page.file.abs_src_path), self._root))
        docs = _posix(os.path.relpath(config.docs_dir, self._root))
        return relink(markdown, here, here, docs, self._root, config.repo_url)

    def on_serve(self, server: LiveReloadServer, /, *, config: MkDocsConfig, builder: Any) -> None:
        for path in dict.fromkeys(self._watched):
            server.watch(path)

    # --- the pages --------------------------------------------------------------------------------

    def _spec_files(self) -> list[str]:
        """The spec files the globs match, as paths relative to the working directory (as
        `archdsl docs` names them), each once, in the order given."""
        found: list[str] = []
        self._watched = []
        for pattern in self.config.specs:
            absolute = os.path.join(self._root, pattern)
            matches = sorted(glob.glob(absolute, recursive=True))
            if not matches:
                raise PluginError(f"archdsl: specs: {pattern!r} matches no file (relative to {self._root})")
            self._watched.append(_fixed_prefix(absolute))
            try:
                found += find_specs(os.path.relpath(m) for m in matches)
            except FileNotFoundError as exc:
                raise PluginError(f"archdsl: {exc}") from None
        return list(dict.fromkeys(found))

    def _pages(self) -> dict[str, str]:
        files = self._spec_files()
        if self._cached is not None:
            read, stamps, pages = self._cached
            if self._key([*files, *read]) == stamps:
                self._watched += [os.path.abspath(path) for path in read]
                return pages
        try:
            programs, diagnostics, loader = compile_files(files)
        except OSError as exc:
            raise PluginError(f"archdsl: {exc.filename or ''}: {exc.strerror or exc}") from None
        cache = SourceCache(loader.sources)
        self._watched += [os.path.abspath(path) for path in loader.sources]
        if any(d.is_error for d in diagnostics):
            rendered = "\n\n".join(render(d, cache, color=False) for d in diagnostics if d.is_error)
            raise PluginError(f"archdsl: the specs have errors:\n\n{rendered}")
        found = entries(programs, cache)
        if not found:
            raise PluginError(f"archdsl: {', '.join(self.config.specs)}: defines no model")
        try:
            pages = site_pages(found, depth=self.config.depth, title=self.config.title)
        except RenderError as exc:
            raise PluginError(f"archdsl: {exc}") from None
        read = list(loader.sources)
        self._cached = (read, self._key([*files, *read]), pages)
        return pages

    def _key(self, paths: list[str]) -> tuple[object, ...]:
        """What the pages depend on: the options that shape them, and each file read with its
        modification time (by absolute path: the working directory may differ between builds)."""
        stamps = set()
        for path in paths:
            absolute = os.path.abspath(path)
            try:
                stamps.add((absolute, os.stat(absolute).st_mtime_ns))
            except OSError:
                stamps.add((absolute, -1))
        return (self.config.depth, self.config.title, *sorted(stamps))

    def _home(self, config: MkDocsConfig) -> str:
        path = os.path.join(self._root, self.config.home or "")
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise PluginError(f"archdsl: home: {self.config.home}: {exc.strerror or exc}") from None
        self._watched.append(path)
        source = _posix(os.path.relpath(os.path.dirname(path), self._root))
        docs = _posix(os.path.relpath(config.docs_dir, self._root))
        return relink(text, source, docs, docs, self._root, config.repo_url)


def _posix(path: str) -> str:
    return path.replace(os.sep, "/")


def _add(files: Files, file: File) -> None:
    """Adds a generated page; a file of the same name in docs_dir is stale (a copy of an older
    generated page, say), which the build reports and replaces."""
    existing = files.get_file_from_path(file.src_uri)
    if existing is not None:
        log.warning(f"archdsl: {file.src_uri} in the docs directory is replaced by the generated page")
        files.remove(existing)
    files.append(file)


def _fixed_prefix(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: what `mkdocs serve` watches, so a
    new spec file is seen too."""
    parts = re.split(r"[*?\[]", pattern, maxsplit=1)
    return parts[0] if len(parts) == 1 else os.path.dirname(parts[0]) or "."


# --- links out of the docs directory --------------------------------------------------------------

_LINK = re.compile(r"(\]\(|\b(?:src|href)=\")([^)\"\s#]*)([^)\"\s]*)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def relink(text: str, source: str, page: str, docs: str, root: str, repo_url: str | None) -> str:
    """Markdown whose relative links are written from the directory `source` as the page served
    from the directory `page` (all three directories relative to `root`, mkdocs.yml's, with `/`).

    A link into `docs` is made relative to `page`. A link to another file of the repository (a
    spec, a script: on GitHub it works, on the site there is no such page) goes to `repo_url`
    (`blob/main/...`, `tree/main/...` for a directory), or, without one, keeps its text only. A
    link to no file at all is left for mkdocs to report, and so are fenced code, URLs and anchors."""
    out: list[str] = []
    fenced = False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        out.append(line if fenced else _relink(line, source, page, docs, root, repo_url))
    return "".join(out)


def _relink(line: str, source: str, page: str, docs: str, root: str, repo_url: str | None) -> str:
    def target(match: re.Match[str]) -> str:
        opener, path, anchor = match.groups()
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:|^/", path):
            return match.group(0)  # an anchor on this page, a URL, or an absolute path
        where = posixpath.normpath(posixpath.join(source, path))
        if where == docs or where.startswith(docs + "/"):
            if source == page:
                return match.group(0)
            slash = "/" if path.endswith("/") else ""
            return f"{opener}{posixpath.relpath(where, page)}{slash}{anchor}"
        if not os.path.exists(os.path.join(root, where)):
            return match.group(0)
        if repo_url:
            kind = "tree" if os.path.isdir(os.path.join(root, where)) else "blob"
            return f"{opener}{repo_url.rstrip('/')}/{kind}/main/{where}{anchor}"
        return f"{opener}\0{path}{anchor}"

    relinked = _LINK.sub(target, line)
    return re.sub(r"\[([^\]]*)\]\(\0[^)]*\)", r"\1", relinked).replace("\0", "")
