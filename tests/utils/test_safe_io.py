"""The restricted unpickler and extension-chosen data files: plain data and
NumPy arrays load, anything that could run code is refused before it
runs."""
import codecs
import collections
import json
import os
import pickle

import numpy as np
import pytest

from hapvr_mm.utils.safe_io import (UnsafePickleError, data_format,
                                    load_data_file, safe_pickle_load,
                                    safe_pickle_loads)


class OpenMarker:
    """Unpickling it calls ``open(marker, 'w')``, creating the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


class SystemMarker:
    """Unpickling it calls ``os.system('touch marker')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


class Codec:
    """Unpickling it calls ``_codecs.encode(b'a', 'zlib')``."""

    def __reduce__(self):
        return codecs.encode, (b'a', 'zlib')


def _dump(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


def _equal(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype
                and a.shape == b.shape
                and np.array_equal(a, b, equal_nan=a.dtype.kind in 'fc'))
    if isinstance(a, dict):
        return (type(a) is type(b) and list(a) == list(b)
                and all(_equal(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_equal(x, y) for x, y in zip(a, b)))
    return type(a) is type(b) and a == b


PLAIN = [
    np.arange(5),
    np.arange(6, dtype=np.float32).reshape(2, 3),
    np.asfortranarray(np.ones((2, 3))),
    np.arange(8)[::3],
    np.array(['a', 'bcd']),
    np.array([b'x', b'yz']),
    np.array([1 + 2j], dtype=np.complex64),
    np.array([True, False]),
    np.array([(1, 2.5)], dtype=[('a', 'i4'), ('b', 'f8')]),
    np.array(['2020-01-01'], dtype='M8[D]'),
    np.zeros((0, 3), dtype=np.float16),
    np.array(3.0),
    np.float32(1.5),
    np.int64(-3),
    np.uint8(7),
    np.bool_(True),
    np.str_('s'),
    np.float16(2),
    np.dtype('<f4'),
    {
        'a': [1, 2.5, None, True],
        'b': (1, 'x'),
        3: {'c'}
    },
    frozenset({1, 2}),
    b'\x00\xffbytes',
    bytearray(b'ab'),
    1j,
    collections.OrderedDict([('z', 1), ('a', 2)]),
    collections.defaultdict(list, a=[1]),
    {
        'q': (np.array(['t1', 't2']), np.array([0.5, 0.25]))
    },
]


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_and_numpy_round_trip(tmp_path, protocol):
    for i, obj in enumerate(PLAIN):
        path = _dump(tmp_path / f'{i}.pkl', obj, protocol)
        got = safe_pickle_load(path)
        assert _equal(got, obj), (protocol, obj, got)
    got = safe_pickle_load(_dump(tmp_path / 'dd.pkl', PLAIN[-2], protocol))
    assert got.default_factory is list


def test_object_array_elements_are_restricted_too(tmp_path):
    ok = np.array([1, 'a', None], dtype=object)
    got = safe_pickle_load(_dump(tmp_path / 'ok.pkl', ok))
    assert got.dtype == object and got.tolist() == [1, 'a', None]
    marker = tmp_path / 'marker'
    bad = np.array([1, OpenMarker(marker)], dtype=object)
    with pytest.raises(UnsafePickleError, match=r'bad\.pkl: refused.*open'):
        safe_pickle_load(_dump(tmp_path / 'bad.pkl', bad))
    assert not marker.exists()


@pytest.mark.parametrize('payload', [OpenMarker, SystemMarker])
@pytest.mark.parametrize('protocol', [0, 2, pickle.HIGHEST_PROTOCOL])
def test_payloads_are_refused_before_they_run(tmp_path, payload, protocol):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pkl'
    # alone, and hidden inside a valid-looking value
    for obj in (payload(marker), {'q': {'t': 0.5, 'x': [payload(marker)]}}):
        _dump(path, obj, protocol)
        with pytest.raises(UnsafePickleError) as err:
            safe_pickle_load(str(path))
        msg = str(err.value)
        assert str(path) in msg
        assert 'open' in msg or 'system' in msg
        assert not marker.exists()
        with pytest.raises(UnsafePickleError):
            safe_pickle_loads(path.read_bytes(), name='blob')
        assert not marker.exists()


def test_other_refusals(tmp_path):
    # an allowed name used in a way other than pickled bytes
    with pytest.raises(UnsafePickleError, match='latin1'):
        safe_pickle_loads(pickle.dumps(Codec()))
    # a class of this module, getattr, persistent ids
    with pytest.raises(UnsafePickleError, match='test_safe_io.Codec'):
        safe_pickle_loads(pickle.dumps([Codec]))
    with pytest.raises(UnsafePickleError, match='builtins.getattr'):
        safe_pickle_loads(b'\x80\x04cbuiltins\ngetattr\n.')
    with pytest.raises(UnsafePickleError, match='persistent'):
        safe_pickle_loads(b'\x80\x02P1\n.')


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pkl'):
        safe_pickle_load(str(tmp_path / 'nope.pkl'))
    bad = tmp_path / 'cut.pkl'
    bad.write_bytes(pickle.dumps({'a': list(range(100))})[:20])
    with pytest.raises(ValueError, match='cut.pkl is not a readable pickle'):
        safe_pickle_load(str(bad))


def test_format_is_chosen_by_the_extension(tmp_path):
    assert data_format('a.PKL') == 'pickle' == data_format('a.pk')
    assert data_format('a.pickle') == 'pickle'
    assert data_format('a.json') == 'json' and data_format('a.npz') == 'npz'
    assert data_format('a.txt') is None and data_format('a', 'json') == 'json'
    marker = tmp_path / 'marker'
    # a pickle named .json fails as JSON: it is never unpickled
    fake = tmp_path / 'scores.json'
    _dump(fake, {'q': OpenMarker(marker)})
    with pytest.raises(
            ValueError, match=r'scores\.json is not a readable '
            r'json file'):
        load_data_file(str(fake), 'scores')
    assert not marker.exists()
    good = tmp_path / 'scores.json'
    good.write_text(json.dumps({'q': {'t': 1.0}}))
    assert load_data_file(str(good), 'scores') == {'q': {'t': 1.0}}
    npz = tmp_path / 'a.npz'
    np.savez(npz, x=np.arange(3))
    assert load_data_file(str(npz), 'arrays')['x'].tolist() == [0, 1, 2]
    # an .npz holding an object array is not unpickled
    np.savez(npz, x=np.array([OpenMarker(marker)], dtype=object))
    with pytest.raises(ValueError, match=r'a\.npz.*npz'):
        load_data_file(str(npz), 'arrays')
    assert not marker.exists()
    pk = _dump(tmp_path / 'x.pk', {'q': OpenMarker(marker)})
    with pytest.raises(UnsafePickleError, match=r'x\.pk: refused'):
        load_data_file(pk, 'scores')
    assert not marker.exists()
