"""Property-based tests of the readers of untrusted files (issue 25, item 8).

The contract of every reader: any bytes give either a valid result or one ``MintauditError`` whose
message is one line (what the CLI prints after ``mintaudit: error:``), never another exception.
Readers: member lists (``--members-file``), query index files (``--query FILE``), YAML configs
(``--config``), ``splits.json`` and ``amint.json``. Random bytes mostly die at the first check, so
each reader is also fed near-valid files: valid lines mixed with hostile ones, or a valid JSON
document with one field replaced by an arbitrary JSON value.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mintaudit._validate import read_config
from mintaudit.active import ActiveModel, export_active, load_active
from mintaudit.data import ImageDataset, Splits, make_splits
from mintaudit.data.member_lists import read_sample_list
from mintaudit.errors import MintauditError
from mintaudit.models import ModelSpec, build_model
from mintaudit.workdir.query import read_query_indices

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
N_POOL = 50
POOL = ImageDataset("toy", np.zeros((N_POOL, 4, 4, 1), np.uint8), np.arange(N_POOL) % 2, 2)

HOSTILE = ["²", "--5", "1O3", "-1", "١٢", "\ufeff7", " 3 ", "#c", "", "x,1", "4,note", "99999999999999999999", "0x1"]
LINE = st.one_of(st.integers(-5, 60).map(str), st.sampled_from(HOSTILE), st.text(max_size=6))
LINES = st.lists(LINE, max_size=12).map(lambda ls: "\n".join(ls))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


def _write(data: bytes | str, name: str) -> Path:
    path = Path(tempfile.mkdtemp()) / name
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


def _one_line_refusal(call):
    """The call's result, or None when it refused with one MintauditError line; any other exception fails."""
    try:
        return call()
    except MintauditError as e:
        assert "\n" not in str(e) and "\r" not in str(e), repr(str(e))
        return None


def _expected_indices(text: str) -> list[int] | None:
    """What a list of pool indices must give: every used line an ASCII integer in the pool, once."""
    out = []
    for raw in text.removeprefix("\ufeff").splitlines():
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        if not (entry.removeprefix("-").isascii() and entry.removeprefix("-").isdecimal()):
            return None
        out.append(int(entry))
    ok = out and all(0 <= v < N_POOL for v in out) and len(set(out)) == len(out)
    return out if ok else None


@SETTINGS
@given(st.one_of(st.binary(max_size=80), LINES.map(lambda t: t.encode("utf-8", "surrogatepass"))), st.booleans())
def test_member_lists_use_or_refuse_every_line(data, bom):
    path = _write((b"\xef\xbb\xbf" if bom else b"") + data, "m.txt")
    got = _one_line_refusal(lambda: read_sample_list(path, POOL))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        assert got is None
        return
    want = _expected_indices(text)
    assert (got is None and want is None) or (got is not None and got.tolist() == want), (text, got, want)


@SETTINGS
@given(st.one_of(st.binary(max_size=80), LINES.map(lambda t: t.encode("utf-8", "surrogatepass"))), st.booleans())
def test_query_index_files_use_or_refuse_every_line(data, header):
    path = _write(data, "q.txt")
    got = _one_line_refusal(lambda: read_query_indices(path, N_POOL, header=header))
    if got is None:
        return
    assert got.dtype == np.int64 and len(np.unique(got)) == len(got) and ((got >= 0) & (got < N_POOL)).all()
    cells = [ln.split(",")[0].strip() for ln in data.decode("utf-8-sig").splitlines()]
    cells = [c for c in cells if c and not c.startswith("#")][int(header) :]
    assert got.tolist() == [int(c) for c in cells]  # every line used, none dropped as a guessed header


@SETTINGS
@given(st.binary(max_size=60))
def test_query_npy_files_are_read_or_refused(data):
    _one_line_refusal(lambda: read_query_indices(_write(data, "q.npy"), N_POOL))


YAML_LINE = st.one_of(
    st.sampled_from(["epochs: 5", "members: 100", "members: 200", "lr: .nan", "a: [1, 2", "!!python/object:os.system"]),
    st.sampled_from(["? [a]\n: 1", "x: &a 1\ny: *a", "<<: {k: 1}", "- 1", "k: !!binary aGk=", "\t"]),
    st.text(max_size=12),
)


@SETTINGS
@given(st.one_of(st.binary(max_size=60), st.lists(YAML_LINE, max_size=6).map(lambda ls: "\n".join(ls).encode())))
def test_yaml_configs_are_a_mapping_or_one_line(data):
    got = _one_line_refusal(lambda: read_config(_write(data, "c.yaml")))
    assert got is None or isinstance(got, dict)


@SETTINGS
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=6), st.integers(0, 9))
def test_yaml_duplicate_keys_are_refused_wherever_they_are(keys, value):
    text = "".join(f"{k}: {value}\n" for k in keys)
    got = _one_line_refusal(lambda: read_config(_write(text, "c.yaml")))
    if len(set(keys)) == len(keys):
        assert got == {k: value for k in keys}
    else:
        assert got is None


@pytest.fixture(scope="module")
def splits_doc(tmp_path_factory):
    path = make_splits(POOL, members=10, external=10, test=10, seed=0).save(tmp_path_factory.mktemp("s") / "s.json")
    return json.loads(path.read_text())


@SETTINGS
@given(st.data())
def test_splits_json_is_valid_or_one_line(splits_doc, data):
    doc = dict(splits_doc)
    key = data.draw(st.sampled_from([*doc, "extra"]))
    doc[key] = data.draw(JSON)
    text = data.draw(st.sampled_from([json.dumps(doc), json.dumps(doc)[:-3], json.dumps(doc).replace(":", "=", 1)]))
    got = _one_line_refusal(lambda: Splits.load(_write(text, "splits.json"), dataset=POOL))
    if got is not None:
        assert set(got.members).isdisjoint(got.external) and set(got.members).isdisjoint(got.test)


@pytest.fixture(scope="module")
def amint_folder(tmp_path_factory):
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    torch.manual_seed(0)
    model = ActiveModel(build_model(spec), ["relu2"], example=torch.zeros(2, 1, 8, 8)).eval()
    return export_active(model, spec, tmp_path_factory.mktemp("a") / "m", threshold=0.4, class_names=["a", "b", "c"])


def _field_paths(doc, prefix=()):
    for k, v in doc.items():
        yield (*prefix, k)
        if isinstance(v, dict):
            yield from _field_paths(v, (*prefix, k))


@SETTINGS
@given(st.data())
def test_amint_json_is_loaded_or_one_line(amint_folder, data):
    doc = json.loads((amint_folder / "amint.json").read_text())
    where = data.draw(st.sampled_from(sorted(_field_paths(doc))))
    node = doc
    for k in where[:-1]:
        node = node[k]
    if data.draw(st.booleans()):
        node[where[-1]] = data.draw(JSON)
    else:
        del node[where[-1]]
    folder = _write(b"", "x").parent
    (folder / "amint.json").write_text(json.dumps(doc))
    (folder / "model.safetensors").write_bytes((amint_folder / "model.safetensors").read_bytes())
    _one_line_refusal(lambda: load_active(folder))


@SETTINGS
@given(st.one_of(st.binary(max_size=40), JSON.map(json.dumps).map(str.encode)))
def test_amint_json_of_any_bytes_is_refused_in_one_line(amint_folder, data):
    folder = _write(data, "amint.json").parent
    (folder / "model.safetensors").write_bytes((amint_folder / "model.safetensors").read_bytes())
    assert _one_line_refusal(lambda: load_active(folder)) is None


@pytest.mark.parametrize("taps", [[None], [], [""], [3]])
def test_amint_json_taps_that_are_not_layer_names_are_refused(amint_folder, taps):
    """A draw hypothesis once found: ``"taps": [None]`` ended in a TypeError inside the layer selector."""
    doc = json.loads((amint_folder / "amint.json").read_text())
    doc["taps"], doc["tap_shapes"] = taps, doc["tap_shapes"][:1] * len(taps)  # one shape per tap, as exported
    folder = _write(b"", "x").parent
    (folder / "amint.json").write_text(json.dumps(doc))
    (folder / "model.safetensors").write_bytes((amint_folder / "model.safetensors").read_bytes())
    assert _one_line_refusal(lambda: load_active(folder)) is None
