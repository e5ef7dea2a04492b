"""The encoded file: export → load gives identical outputs; damage gives one clear error."""

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from quantsurvey.compress.container import pack_container, unpack_container
from quantsurvey.compress.kmeans import SharingConfig
from quantsurvey.errors import CheckpointError
from quantsurvey.export import export_model, load_model
from quantsurvey.models import create_model
from quantsurvey.nn.masking import prune_by_magnitude
from quantsurvey.nn.weight_sharing import share_weights

INFO = {"name": "lenet5", "num_classes": 10, "input_shape": [1, 28, 28], "params": {}}


@pytest.fixture
def shared_lenet5():
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, input_shape=(1, 28, 28))
    prune_by_magnitude(model, {"conv1": 0.2, "conv2": 1.0, "fc1": 1.4, "fc2": 0.8})
    share_weights(model, SharingConfig(bits={"conv": 8, "fc": 5}))
    return model.eval()


def test_export_load_gives_identical_outputs(shared_lenet5, tmp_path):
    path = tmp_path / "m.qsdc"
    report = export_model(shared_lenet5, path, INFO, {"conv1": 8, "conv2": 8, "fc1": 3, "fc2": 5})
    assert report["size_bytes"] == path.stat().st_size
    assert report["layers"]["fc1"]["fillers"] > 0  # 3-bit gaps overflow: fillers exercised
    loaded = load_model(path).eval()
    x = torch.randn(32, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(shared_lenet5(x), loaded(x))
    for name in ("conv1", "conv2", "fc1", "fc2"):
        assert torch.equal(getattr(shared_lenet5, name).weight, getattr(loaded, name).weight)


def test_per_layer_accounting(shared_lenet5, tmp_path):
    report = export_model(shared_lenet5, tmp_path / "m.qsdc", INFO,
                          {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5})
    fc1 = report["layers"]["fc1"]
    nonzero = int((shared_lenet5.fc1.weight != 0).sum())
    assert fc1["kept_pct"] == pytest.approx(100 * nonzero / 400_000)
    assert fc1["weight_bits_pq"] == 5 and fc1["weight_bits_huffman"] < 5
    assert 0 < fc1["index_bits_huffman"] <= 5.5


@pytest.mark.parametrize("damage, why", [
    ("truncate", "checksum does not match"), ("flip", "checksum does not match"),
    ("magic above", "QSDC signature"), ("magic below", "QSDC signature"),
    ("empty", "QSDC signature"), ("short", "holds 12 bytes, too few"),
    ("version", "format version 9, this code reads versions 1 and 2"),
    ("checksum zero", "checksum does not match"), ("checksum ones", "checksum does not match")])
def test_damaged_file_is_one_clear_error(shared_lenet5, tmp_path, damage, why):
    path = tmp_path / "m.qsdc"
    export_model(shared_lenet5, path, INFO, {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "magic above":
        data[:4] = b"ZIP!"  # sorts after b"QSDC"
    elif damage == "magic below":
        data[:4] = b"PK\x03\x04"  # sorts before it
    elif damage == "short":
        data = data[:12]  # one byte short of the smallest container
    elif damage == "version":
        data[4] = 9
    elif damage == "checksum zero":  # below any computed CRC, and above it next
        data[-4:] = b"\x00" * 4
    elif damage == "checksum ones":
        data[-4:] = b"\xff" * 4
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"not a valid quantsurvey encoded model: .*{why}"):
        load_model(path)


@pytest.mark.parametrize("version, head", [
    (2, b""), (2, b"not deflate"), (2, zlib.compress(b"not json")), (2, zlib.compress(b"{}")),
    (2, zlib.compress(b"[1, 2]")), (2, zlib.compress(b'{"blobs": 3}')),
    (1, b'{"blobs": [1]}')], ids=["empty", "not-deflate", "not-json", "no-blobs", "a-list",
                                  "blobs-not-a-list", "v1-blobs-not-a-dict"])
def test_a_header_that_cannot_be_read_is_one_clear_error_even_with_a_valid_checksum(version,
                                                                                     head):
    body = b"QSDC" + bytes([version]) + struct.pack("<I", len(head)) + head
    with pytest.raises(CheckpointError, match="its header cannot be read"):
        unpack_container(body + struct.pack("<I", zlib.crc32(body)))


def test_committed_encoded_files_repack_byte_for_byte():
    """Every encoded file committed in the repository (results/runs, experiments/, fixtures)
    reads back and, packed again, gives its own bytes: the format (header deflated at level 9,
    blob order, CRC) has not moved under the sizes that results/ reports."""
    repo = Path(__file__).resolve().parents[2]
    files = sorted(p for folder in ("results", "experiments", "tests")
                   for p in (repo / folder).rglob("*.qsdc"))
    assert len(files) >= 50
    for path in files:
        data = path.read_bytes()
        assert pack_container(*unpack_container(data, str(path))) == data, path


def test_container_round_trip():
    header, blobs = unpack_container(pack_container({"a": [1, 2]}, {"x": b"\x00\x01", "y": b""}))
    assert header == {"a": [1, 2]} and blobs == {"x": b"\x00\x01", "y": b""}


def test_version_1_files_still_load():
    """Version 1 (plain JSON header with blob offsets) wrote the encoded files of earlier runs."""
    head = json.dumps({"a": 1, "blobs": {"x": [0, 2], "y": [2, 1]}}).encode()
    body = b"QSDC\x01" + struct.pack("<I", len(head)) + head + b"\x05\x06\x07"
    header, blobs = unpack_container(body + struct.pack("<I", zlib.crc32(body)))
    assert header == {"a": 1} and blobs == {"x": b"\x05\x06", "y": b"\x07"}


def test_container_header_is_deflated():
    header = {"layers": {f"fc{i}": {"shape": [300, 784], "bits": 6} for i in range(20)}}
    plain = len(json.dumps(header, separators=(",", ":")))
    assert len(pack_container(header, {})) < plain / 2


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.qsdc")


@pytest.mark.parametrize("lengths", [[3, 0, 15, 1, 2], [1, 2], [0] * 7 + [15], [20, 1, 0]])
def test_code_length_tables_round_trip(lengths):
    from quantsurvey.export import pack_lengths, unpack_lengths

    blob = pack_lengths(np.array(lengths))
    assert unpack_lengths(blob, len(lengths)).tolist() == lengths
    assert len(blob) == 1 + (-(-len(lengths) // 2) if max(lengths) <= 15 else len(lengths))


def test_only_used_codebook_entries_are_stored(tmp_path):
    """k-means can leave clusters empty: an unused centroid costs nothing in the file."""
    from quantsurvey.nn.quant import add_weight_transform
    from quantsurvey.nn.weight_sharing import SharedCodebook

    torch.manual_seed(0)
    model = create_model("lenet300_100", num_classes=10, input_shape=(1, 28, 28)).eval()
    for name, used in (("fc1", [3, 9, 30]), ("fc2", list(range(1, 64))), ("fc3", [63])):
        layer = getattr(model, name)
        pick = torch.tensor(used)[torch.randint(len(used), layer.weight.shape)]
        assignment = torch.where(torch.rand(layer.weight.shape) < 0.8, 0, pick)
        add_weight_transform(layer, SharedCodebook(torch.randn(63), assignment, 6))
    path = tmp_path / "m.qsdc"
    report = export_model(model, path, INFO | {"name": "lenet300_100"}, {"fc1": 5, "fc2": 5,
                                                                           "fc3": 5})
    assert [report["layers"][n]["codebook_used"] for n in ("fc1", "fc2", "fc3")] == [3, 63, 1]
    from quantsurvey.compress.container import read_container

    header, blobs = read_container(path)
    assert len(blobs["fc1/codebook"]) == 3 * 4 and len(blobs["fc3/codebook"]) == 4
    assert header["layers"]["fc1"]["codebook_size"] == 3
    loaded = load_model(path).eval()
    for name in ("fc1", "fc2", "fc3"):
        assert torch.equal(getattr(model, name).weight, getattr(loaded, name).weight)


@pytest.mark.parametrize("setting", ["lenet300_100", "lenet5"])
def test_files_written_before_codebook_size_existed_still_load(setting):
    """Files of the previous format (every 2^b − 1 centroid stored, no `codebook_size`; the
    committed seed-1 files of 49ec4d0, kept in tests/compress/fixtures) decode to exactly the
    weights of their re-encoded successors in results/."""
    from quantsurvey.compress.container import read_container
    from tests.conftest import REPO

    old = REPO / f"tests/compress/fixtures/{setting}_v2_full_codebook.qsdc"
    new = REPO / f"results/runs/han2016_deep_compression/{setting}_mnist/quantize/seed=1.qsdc"
    header, blobs = read_container(old)
    assert not any("codebook_size" in m for m in header["layers"].values())
    for name, meta in header["layers"].items():
        assert len(blobs[f"{name}/codebook"]) == 4 * ((1 << meta["bits"]) - 1)
    old_model, new_model = load_model(old), load_model(new)
    for (key, a), (key_b, b) in zip(old_model.state_dict().items(),
                                    new_model.state_dict().items(), strict=True):
        assert key == key_b and torch.equal(a, b)
    assert new.stat().st_size < old.stat().st_size
