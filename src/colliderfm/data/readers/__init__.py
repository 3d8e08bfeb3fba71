"""Readers: canonical Parquet shards and the foreign formats physicists already have.

One :class:`~colliderfm.data.readers.base.Reader` per format, registered in
:data:`~colliderfm.data.readers.base.READERS`; importing this package imports every format
module, so the registry is complete. Look a reader up with
:func:`~colliderfm.data.readers.base.reader_for`.
"""

from colliderfm.data.readers import jetclass, nanoaod, parquet, toptagging  # noqa: F401 (register)
from colliderfm.data.readers.base import READERS, Reader, reader_for
from colliderfm.data.readers.dispatch import detect_format, iter_chunks

__all__ = ["READERS", "Reader", "detect_format", "iter_chunks", "reader_for"]
