"""make_mesh (the 1-D form, axis sizes, Auto axis types), parse_mesh, and their errors."""
import jax
import pytest
from jax.sharding import AxisType

from funcnn import parallel


def test_make_mesh_forms():
    everything = parallel.make_mesh()
    assert everything.axis_names == ("data",) and everything.devices.size == len(jax.devices())
    assert parallel.make_mesh(1).shape == {"data": 1}
    two_d = parallel.make_mesh({"data": 1, "model": 1})
    assert two_d.axis_names == ("data", "model") and two_d.devices.shape == (1, 1)
    assert tuple(two_d.axis_types) == (AxisType.Auto, AxisType.Auto)


@pytest.mark.parametrize("axes, error, message", [
    ({"data": 10 ** 6}, ValueError, r"at most the \d+ devices available, got \{'data': "
                                    r"1000000\} \(product 1000000\).*device_count=1000000"),
    (0, ValueError, r"sizes >= 1, got 'data'=0"),
    ({"data": 0}, ValueError, r"sizes >= 1, got 'data'=0"),
    ({1: 2}, ValueError, r"axis names \(str\)"),
    ({}, TypeError, r"expected None, an int or a mapping"),
    ("data=2", TypeError, r"expected None, an int or a mapping"),
])
def test_make_mesh_errors(axes, error, message):
    with pytest.raises(error, match=message):
        parallel.make_mesh(axes)


def test_parse_mesh():
    assert parallel.parse_mesh("data=4,model=2") == {"data": 4, "model": 2}
    assert list(parallel.parse_mesh(" model=2 , data=4")) == ["model", "data"]  # mesh order


@pytest.mark.parametrize("text, message", [
    ("data4", r"expected NAME=SIZE.*got 'data4'"),
    ("data=0", r"sizes >= 1"),
    ("data=x", r"the part 'data=x'"),
    ("=2", r"expected NAME=SIZE"),
    ("data=2,data=2", r"axis 'data' is given twice"),
])
def test_parse_mesh_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parallel.parse_mesh(text)
