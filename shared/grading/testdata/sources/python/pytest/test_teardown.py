import pytest


@pytest.fixture
def resource():
    yield "ready"
    raise RuntimeError("cleanup failed")


def test_passes_then_teardown_fails(resource):
    assert resource == "ready"


@pytest.mark.parametrize("n", [1, 2])
def test_skipped_twice(n):
    pytest.skip("needs a GPU")


@pytest.mark.xfail(strict=True, reason="must fail")
def test_strict_xpass():
    pass


@pytest.mark.parametrize("text", ["a b", "c - d"])
def test_ids_with_spaces(text):
    assert " " in text
