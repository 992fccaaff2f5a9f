"""Arrow-indexed ``.mmza`` archives with random access to every member.

>>> from mmz.archive import Archive, create      # doctest: +SKIP
>>> create(["data/sample"], "out/sample.mmza")  # doctest: +SKIP
>>> Archive("out/sample.mmza").read("text/debian_handbook_en.txt")  # doctest: +SKIP

Layout and schemas: docs/FORMAT.md, section "Archive".
"""

from __future__ import annotations

from mmz.archive.format import FORMAT_VERSION
from mmz.archive.reader import Archive, Member, Result
from mmz.archive.writer import DEFAULT_CHUNK_SIZE, Options, Summary, create

__all__ = ["Archive", "Member", "Result", "Options", "Summary", "create", "DEFAULT_CHUNK_SIZE", "FORMAT_VERSION"]
