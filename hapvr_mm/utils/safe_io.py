"""Read data files without running code from them.

A pickle can call any importable function while it is being read, so a
similarities, annotation or id-list file from someone else could run code
on the reader's machine. Every pickle the project reads goes through
:func:`safe_pickle_load`, whose unpickler only builds plain data: the
builtin containers, numbers, strings and bytes, ``OrderedDict`` /
``defaultdict`` and NumPy arrays, scalars and dtypes. Any other global the
file asks for is refused with an :class:`UnsafePickleError` naming the file
and the global; nothing is called before the refusal.

The format of a data file is chosen by its extension
(:func:`data_format`), never guessed from its first bytes: a pickle named
``.json`` fails as bad JSON. ``.npz`` files are read with
``allow_pickle=False``.
"""
import collections
import json
import os.path as osp
import pickle
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

__all__ = [
    'PICKLE_EXTENSIONS', 'JSON_EXTENSIONS', 'NPZ_EXTENSIONS',
    'UnsafePickleError', 'RestrictedUnpickler', 'safe_pickle_load',
    'safe_pickle_loads', 'data_format', 'load_data_file'
]

#: Extensions read as (restricted) pickles.
PICKLE_EXTENSIONS = ('.pkl', '.pickle', '.pk')
#: Extensions read as JSON.
JSON_EXTENSIONS = ('.json', )
#: Extensions read as NumPy archives (``allow_pickle=False``).
NPZ_EXTENSIONS = ('.npz', )


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global outside the allow-list.

    Also a ``ValueError``, so that callers reporting unreadable files catch
    it like any other bad content.
    """


def _latin1_encode(text: Any, encoding: str = 'latin1') -> bytes:
    """Stand-in for ``_codecs.encode`` in protocol 0-2 pickles of bytes.

    Python pickles ``bytes`` with protocols below 3 as
    ``_codecs.encode(text, 'latin1')``; only that exact use is allowed.

    Args:
        text (str): the bytes as a latin-1 string.
        encoding (str): must be ``'latin1'`` / ``'latin-1'``.

    Returns:
        bytes: the encoded bytes.
    """
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafePickleError(
            f'_codecs.encode({type(text).__name__}, {encoding!r}) refused: '
            "only _codecs.encode(str, 'latin1') (pickled bytes) is allowed")
    return text.encode('latin1')


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    """The NumPy globals that pickles of arrays, scalars and dtypes use.

    Pickles written by numpy 1.x name ``numpy.core``, numpy 2.x names
    ``numpy._core``; both map to this NumPy's own objects (looked up here,
    never imported by the name a file gives).

    Returns:
        dict: ``(module, name)`` -> object.
    """
    core = getattr(np, '_core', None) or np.core
    reconstruct = core.multiarray._reconstruct
    scalar = core.multiarray.scalar
    frombuffer = core.numeric._frombuffer
    out: Dict[Tuple[str, str], Any] = {
        ('numpy', 'ndarray'): np.ndarray,
        ('numpy', 'dtype'): np.dtype,
    }
    for pkg in ('numpy.core', 'numpy._core'):
        out[(f'{pkg}.multiarray', '_reconstruct')] = reconstruct
        out[(f'{pkg}.multiarray', 'scalar')] = scalar
        out[(f'{pkg}.numeric', '_frombuffer')] = frombuffer
    return out


def _builtin_globals() -> Dict[Tuple[str, str], Any]:
    """Plain containers and values, under Python 3 and Python 2 names.

    Returns:
        dict: ``(module, name)`` -> object.
    """
    types = (dict, list, tuple, set, frozenset, str, int, float, bool, complex,
             bytes, bytearray)
    out: Dict[Tuple[str, str], Any] = {}
    for module in ('builtins', '__builtin__'):
        for cls in types:
            out[(module, cls.__name__)] = cls
    out[('__builtin__', 'unicode')] = str
    out[('__builtin__', 'long')] = int
    out[('collections', 'OrderedDict')] = collections.OrderedDict
    out[('collections', 'defaultdict')] = collections.defaultdict
    out[('_codecs', 'encode')] = _latin1_encode
    return out


_ALLOWED: Optional[Dict[Tuple[str, str], Any]] = None


def _allowed() -> Dict[Tuple[str, str], Any]:
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = {**_builtin_globals(), **_numpy_globals()}
    return _ALLOWED


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only.

    :meth:`find_class` returns objects from a fixed table (builtin
    containers and values, ``OrderedDict`` / ``defaultdict``, NumPy arrays,
    scalars and dtypes) and refuses every other global, so a file cannot
    make the reader import a module or call a function of its choice.

    Args:
        file: binary file object.
        name (str): the file's name, used in messages.
        **kwargs: ``encoding`` / ``errors`` of :class:`pickle.Unpickler`
            (for Python 2 pickles).
    """

    def __init__(self, file: Any, name: str = '<pickle>', **kwargs) -> None:
        super().__init__(file, **kwargs)
        self.name = name

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global or raise :class:`UnsafePickleError`.

        Args:
            module (str): module the pickle names.
            name (str): global the pickle names.

        Returns:
            The allowed object.
        """
        obj = _allowed().get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f'{self.name}: refused to load global {module}.{name} '
                '(only plain containers, numbers, strings, bytes and NumPy '
                'arrays are read from pickles)')
        return obj

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are refused (they would need outside objects)."""
        raise UnsafePickleError(
            f'{self.name}: refused persistent id {pid!r} (plain data only)')


def safe_pickle_loads(data: bytes,
                      name: str = '<bytes>',
                      encoding: str = 'ASCII') -> Any:
    """Unpickle plain data from bytes with :class:`RestrictedUnpickler`.

    Args:
        data (bytes): the pickle.
        name (str): name used in messages. Defaults to ``'<bytes>'``.
        encoding (str): how Python 2 ``str`` is decoded. Defaults to
            ``'ASCII'`` (as :func:`pickle.loads`).

    Returns:
        Any: the object.

    Raises:
        UnsafePickleError: a global outside the allow-list.
        ValueError: any other unpickling failure (named).
    """
    import io
    try:
        return RestrictedUnpickler(
            io.BytesIO(data), name=name, encoding=encoding).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # noqa: BLE001 - any unpickling failure
        raise ValueError(f'{name} is not a readable pickle '
                         f'({type(err).__name__}: {err})') from err


def safe_pickle_load(path: str, encoding: str = 'ASCII') -> Any:
    """Unpickle plain data from a file without running code from it.

    Args:
        path (str): the pickle file.
        encoding (str): how Python 2 ``str`` is decoded. Defaults to
            ``'ASCII'`` (as :func:`pickle.load`).

    Returns:
        Any: the object (dicts, lists, tuples, sets, strings, numbers,
        bytes, ``OrderedDict`` / ``defaultdict``, NumPy arrays / scalars).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the file names a global outside the allow-list
            (the message names the file and the global).
        ValueError: any other unpickling failure (names the file).
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'pickle file not found: {path}')
    with open(path, 'rb') as f:
        try:
            return RestrictedUnpickler(f, name=path, encoding=encoding).load()
        except UnsafePickleError:
            raise
        except Exception as err:  # noqa: BLE001 - any unpickling failure
            raise ValueError(f'{path} is not a readable pickle '
                             f'({type(err).__name__}: {err})') from err


def data_format(path: str, default: Optional[str] = None) -> Optional[str]:
    """The format of a data file, from its extension only.

    Args:
        path (str): the file name.
        default (str, optional): the format of any other extension.

    Returns:
        str | None: ``'pickle'`` (``.pkl`` / ``.pickle`` / ``.pk``),
        ``'json'``, ``'npz'`` or ``default``.
    """
    lower = str(path).lower()
    if lower.endswith(PICKLE_EXTENSIONS):
        return 'pickle'
    if lower.endswith(JSON_EXTENSIONS):
        return 'json'
    if lower.endswith(NPZ_EXTENSIONS):
        return 'npz'
    return default


def _load_json(path: str) -> Any:
    with open(path, 'r', encoding='utf-8') as f:
        return json.load(f)


def _load_npz(path: str) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


_LOADERS: Dict[str, Callable[[str], Any]] = {
    'pickle': safe_pickle_load,
    'json': _load_json,
    'npz': _load_npz,
}


def load_data_file(path: str, what: str, default: str = 'json') -> Any:
    """Read a data file in the format its extension names.

    Args:
        path (str): the file.
        what (str): what the file should hold, for messages.
        default (str): format of an unknown extension (``'json'``,
            ``'pickle'`` or ``'npz'``). Defaults to ``'json'``.

    Returns:
        Any: the object (a dict of arrays for ``.npz``).

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: a pickle asking for a refused global.
        ValueError: the content is not valid for the format (names the
            file, the format and ``what``).
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {path}')
    fmt = data_format(path, default)
    if fmt not in _LOADERS:
        raise ValueError(f'unknown data format {fmt!r} for {path}')
    try:
        return _LOADERS[fmt](path)
    except UnsafePickleError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure
        raise ValueError(f'{path} is not a readable {fmt} file of {what} '
                         f'(format chosen by the extension; '
                         f'{type(err).__name__}: {err})') from err
