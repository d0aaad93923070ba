"""The format document is in the repository and says what the files hold: every manifest
field export writes, every key prefix, the tolerance numbers and the conventions at kinks with
the values the golden files use; the README links only into the repository."""
import json
import re
from pathlib import Path

import pytest

import oracle
from oracle.conventions import CONVENTIONS
from oracle.tolerance import ATOL_FLOOR, LOW_ULPS, NOISE_ULPS, RTOL

ROOT = Path(__file__).resolve().parents[2]
FORMAT_DOC = ROOT / "docs" / "oracle-format.md"
DOC = FORMAT_DOC.read_text()


@pytest.mark.parametrize("page", ["README.md", "docs/design.md", "docs/oracle-format.md"])
def test_links_stay_inside_the_repository_and_exist(page):
    text = (ROOT / page).read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (ROOT / page).parent / target.split("#")[0]
        assert path.resolve().is_relative_to(ROOT), f"{page} links outside: {target}"
        assert path.exists(), f"{page} links to a missing file: {target}"


def test_internal_anchors_exist():
    prose = re.sub(r"```.*?```", "", DOC, flags=re.S)  # no headings inside code blocks
    anchors = {re.sub(r"[^a-z0-9_ -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", prose, re.M)}
    for anchor in re.findall(r"\]\(#([^)]+)\)", DOC):
        assert anchor in anchors, anchor


def fields_documented(names):
    return [n for n in names if f"`{n}`" not in DOC]


def test_every_manifest_field_is_documented(golden):
    manifest = json.loads((golden / "manifest.json").read_text())
    assert fields_documented(manifest) == []
    entry_fields, array_fields, spec_fields, tolerance_fields = set(), set(), set(), set()
    for entry in manifest["cases"]:
        entry_fields |= set(entry)
        tolerance_fields |= set(entry["tolerance"])
        spec_fields |= set(entry.get("spec", {}))
        for spec in entry["arrays"].values():
            array_fields |= set(spec)
    assert fields_documented(sorted(entry_fields | array_fields | tolerance_fields
                                    | spec_fields)) == []
    assert "probe_graph" in entry_fields and "spec" in entry_fields
    assert fields_documented(CONVENTIONS) == []


def test_every_key_prefix_is_documented(golden):
    manifest = json.loads((golden / "manifest.json").read_text())
    prefixes = {k.split("/")[0] for e in manifest["cases"] for k in e["arrays"]}
    assert prefixes == {"params", "inputs", "cotangents", "outputs", "grads", "probes",
                        "trajectory"}
    assert [p for p in prefixes if f"`{p}/" not in DOC] == []


def test_tolerance_numbers_are_the_ones_used():
    def fmt(v):
        return f"{v:.0e}".replace("e-0", "e-")
    for dtype in ("float64", "float32"):
        table = RTOL[dtype]
        assert f"`{fmt(table['shallow'])}` / `{fmt(table['deep'])}`" in DOC, dtype
    assert f"`rtol = {LOW_ULPS['shallow']} eps` (shallow) and `{LOW_ULPS['deep']} eps`" in DOC
    for floor in ATOL_FLOOR.values():
        assert f"`{fmt(floor)}`" in DOC
    assert f"{NOISE_ULPS:g} * eps" in DOC
    assert "|result_i - golden_i| <= atol_key + rtol * |golden_i|" in DOC
    assert "max_rel = max_i |result_i - golden_i| / (|golden_i| + atol_key / rtol)" in DOC


def test_conventions_table_has_the_golden_values():
    rows = dict(re.findall(r"^\| `(\w+)` \| (?:\\\||[^|])+ \| ([^|]+) \|", DOC, re.M))
    for key, value in CONVENTIONS.items():
        assert key in rows, key
        text = rows[key].replace("*", "").strip()
        if isinstance(value, float):
            assert float(text.split()[0].lstrip("+")) == value, (key, text)
        else:
            assert text == value, (key, text)


def test_no_text_contradicts_the_kink_conventions():
    """abs'(0) is +1 in the golden files: no description, spec or document says 0."""
    texts = [DOC, (ROOT / "oracle" / "cases" / "activations.py").read_text()]
    texts += [c.description + json.dumps(c.function_spec) for c in oracle.cases.all()]
    for text in texts:
        assert not re.search(r"abs'\(0\) = 0", text)


def test_every_case_family_has_a_section():
    for spec in oracle.cases.SPECS:
        parts = spec.base.split(".")
        family = ".".join(parts[:2])
        if spec.kind == "activation":
            assert f"| `{parts[1]}` |" in DOC or f"| `{'.'.join(parts[1:3])}` |" in DOC, \
                spec.base
        else:
            assert f"`{family}" in DOC or f"### {family}" in DOC, spec.base
        for variant in parts[2:]:
            assert f"`{variant}`" in DOC or f".{variant}`" in DOC, spec.base
