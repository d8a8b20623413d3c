import sys
import pytest


def add(a, b):
    return a + b


class TestAdd:
    def test_zero(self):
        assert add(0, 0) == 0

    def test_wrong(self):
        assert add(2, 2) == 5, "arithmetic is hard"

    @pytest.mark.parametrize("a,b,want", [(1, 2, 3), (2, 2, 5)])
    def test_param(self, a, b, want):
        assert add(a, b) == want


def test_plain():
    print("captured output from test_plain")
    assert True


@pytest.mark.skip(reason="not on this platform")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known bug")
def test_expected_failure():
    assert add(1, 1) == 3


@pytest.mark.xfail(reason="fixed upstream")
def test_unexpected_pass():
    assert add(1, 1) == 2


@pytest.fixture
def broken_resource():
    raise RuntimeError("database is down")


def test_uses_broken_fixture(broken_resource):
    pass


def test_raises():
    {}["missing"]
