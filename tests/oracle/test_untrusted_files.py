"""Files from elsewhere are untrusted: every malformed input makes ``verify`` exit 2 with a
message naming the file and the key, never a traceback; nothing is unpickled."""
import json
import shutil
import zipfile

import numpy as np
import pytest

import oracle
from oracle.cli import main
from oracle.golden import export

CASE = "layer.dense.f32"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    directory = tmp_path_factory.mktemp("small_golden")
    export(directory, oracle.cases.all("layer.dense.*"))
    return directory


@pytest.fixture
def dirs(pristine, tmp_path):
    golden, results = tmp_path / "golden", tmp_path / "results"
    shutil.copytree(pristine, golden)
    results.mkdir()
    for dtype in ("f64", "f32"):  # correct results: the golden values themselves
        with np.load(golden / f"layer.dense.{dtype}.npz", allow_pickle=False) as a:
            keep = {k: a[k] for k in a.files if k.startswith(("outputs/", "grads/"))}
        np.savez(results / f"layer.dense.{dtype}.npz", **keep)
    return golden, results


def run(dirs, capsys, *extra):
    golden, results = dirs
    code = main(["verify", str(golden), str(results), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def results_arrays(results):
    with np.load(results / f"{CASE}.npz", allow_pickle=False) as a:
        return {k: a[k] for k in a.files}


def manifest(golden):
    return json.loads((golden / "manifest.json").read_text())


def write_manifest(golden, data):
    (golden / "manifest.json").write_text(json.dumps(data))


def test_clean_results_pass(dirs, capsys):
    code, out = run(dirs, capsys)
    assert code == 0, out


def test_object_array_is_refused_without_unpickling(dirs, capsys):
    golden, results = dirs
    arrays = results_arrays(results)
    arrays["grads/params/w"] = np.array([{"boom": 1}, None], dtype=object)
    np.savez(results / f"{CASE}.npz", **arrays)  # np.savez pickles object arrays
    code, out = run(dirs, capsys)
    assert code == 2
    assert f"{CASE}.npz" in out and "grads/params/w" in out and "object array" in out
    assert "Traceback" not in out


def test_string_array_is_refused(dirs, capsys):
    golden, results = dirs
    arrays = results_arrays(results)
    arrays["outputs/y"] = np.array(["a", "b"])
    np.savez(results / f"{CASE}.npz", **arrays)
    code, out = run(dirs, capsys)
    assert code == 2 and "outputs/y" in out and "numeric" in out


def test_manifest_checksum_mismatch(dirs, capsys):
    golden, _ = dirs
    data = manifest(golden)
    data["cases"][1]["sha256"] = "0" * 64
    write_manifest(golden, data)
    code, out = run(dirs, capsys)
    assert code == 2 and f"{CASE}.npz" in out and "sha256" in out and "checksum" in out


def test_tampered_golden_archive_fails_its_checksum(dirs, capsys):
    golden, _ = dirs
    path = golden / f"{CASE}.npz"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    code, out = run(dirs, capsys)
    assert code == 2 and f"{CASE}.npz" in out and "sha256" in out


@pytest.mark.parametrize("field", ["sha256", "arrays", "file", "tolerance"])
def test_manifest_entry_missing_a_key(dirs, capsys, field):
    golden, _ = dirs
    data = manifest(golden)
    del data["cases"][0][field]
    write_manifest(golden, data)
    code, out = run(dirs, capsys)
    assert code == 2 and "manifest.json" in out and f"cases[0].{field}" in out


def test_golden_archive_missing_a_key_listed_in_the_manifest(dirs, capsys):
    golden, _ = dirs
    data = manifest(golden)
    data["cases"][1]["arrays"]["grads/params/extra"] = {"shape": [2], "dtype": "float32"}
    write_manifest(golden, data)
    code, out = run(dirs, capsys)
    assert code == 2 and f"{CASE}.npz" in out and "grads/params/extra" in out


@pytest.mark.parametrize("bad, what", [(np.zeros((3, 5), np.float32), "shape"),
                                       (np.zeros((5, 3), np.float64), "dtype"),
                                       (np.zeros((5, 3), np.int32), "dtype")])
def test_wrong_shape_or_dtype(dirs, capsys, bad, what):
    golden, results = dirs
    arrays = results_arrays(results)
    arrays["grads/params/w"] = bad
    np.savez(results / f"{CASE}.npz", **arrays)
    code, out = run(dirs, capsys)
    assert code == 2
    assert f"{CASE}.npz" in out and "grads/params/w" in out and "expected shape [5, 3]" in out


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_results_zip(dirs, capsys, keep):
    golden, results = dirs
    path = results / f"{CASE}.npz"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    code, out = run(dirs, capsys)
    assert code == 2 and f"{CASE}.npz" in out and "truncated or corrupt" in out
    assert "Traceback" not in out


def test_truncated_golden_zip_with_a_matching_checksum(dirs, capsys):
    golden, _ = dirs
    path = golden / f"{CASE}.npz"
    path.write_bytes(path.read_bytes()[:300])
    data = manifest(golden)
    from oracle.npzio import sha256
    data["cases"][1]["sha256"] = sha256(path)
    write_manifest(golden, data)
    code, out = run(dirs, capsys)
    assert code == 2 and f"{CASE}.npz" in out and "truncated or corrupt" in out


def test_corrupt_member_inside_a_valid_zip(dirs, capsys):
    golden, results = dirs
    path = results / f"{CASE}.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("outputs/y.npy", b"\x93NUMPY not really an array")
    code, out = run(dirs, capsys)
    assert code == 2 and "outputs/y" in out


def test_member_that_is_not_npy(dirs, capsys):
    _, results = dirs
    with zipfile.ZipFile(results / f"{CASE}.npz", "a") as zf:
        zf.writestr("evil.pkl", b"cos\nsystem\n(S'echo hi'\ntR.")
    code, out = run(dirs, capsys)
    assert code == 2 and "evil.pkl" in out


def test_results_that_are_not_a_zip(dirs, capsys):
    _, results = dirs
    (results / f"{CASE}.npz").write_bytes(b"\x80\x04K\x01.")  # a pickle
    code, out = run(dirs, capsys)
    assert code == 2 and f"{CASE}.npz" in out


@pytest.mark.parametrize("text, key", [("{not json", "not valid JSON"),
                                       ('{"format": "other/9", "cases": []}', "format"),
                                       ('{"format": "funcnn-oracle/1"}', "cases")])
def test_bad_manifest(dirs, capsys, text, key):
    golden, _ = dirs
    (golden / "manifest.json").write_text(text)
    code, out = run(dirs, capsys)
    assert code == 2 and "manifest.json" in out and key in out


def test_file_names_cannot_leave_the_golden_directory(dirs, capsys):
    golden, _ = dirs
    data = manifest(golden)
    data["cases"][0]["file"] = "../../etc/passwd"
    write_manifest(golden, data)
    code, out = run(dirs, capsys)
    assert code == 2 and "cases[0].file" in out


def test_error_goes_to_the_json_report_too(dirs, capsys, tmp_path):
    golden, results = dirs
    (results / f"{CASE}.npz").write_bytes(b"junk")
    report = tmp_path / "r.json"
    code, _ = run(dirs, capsys, "--json", str(report))
    data = json.loads(report.read_text())
    assert code == 2 and data["exit_code"] == 2 and data["error"]["file"].endswith(f"{CASE}.npz")


def test_missing_results_file_and_key_exit_1(dirs, capsys):
    golden, results = dirs
    arrays = results_arrays(results)
    del arrays["grads/params/b"]
    np.savez(results / f"{CASE}.npz", **arrays)
    (results / "layer.dense.f64.npz").unlink()
    code, out = run(dirs, capsys)
    assert code == 1
    assert "grads/params/b: missing" in out and "no results file" in out
    assert "0 passed, 0 failed, 2 missing" in out
