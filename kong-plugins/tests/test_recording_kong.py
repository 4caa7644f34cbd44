"""The recording PDK stand-in (tests/support/recording_kong.py) has exactly the harness's PDK
methods, so an entry test cannot pass by calling a method Kong would not answer."""

from __future__ import annotations

import pytest

from kong_harness.pdk import PDK
from tests.support.recording_kong import RecordingKong


def test_a_misspelt_method_is_an_attribute_error() -> None:
    kong = RecordingKong()
    with pytest.raises(AttributeError, match=r"kong\.request\.get_headr is not a PDK method"):
        kong.request.get_headr("authorization")
    assert kong.calls == []


def test_an_answer_for_a_method_the_pdk_lacks_is_refused() -> None:
    with pytest.raises(AttributeError, match=r"kong\.request\.get_headr"):
        RecordingKong({"kong.request.get_headr": "x"})


def test_a_namespace_is_not_callable() -> None:
    with pytest.raises(AttributeError, match="namespace"):
        RecordingKong().service.request()


def test_every_pdk_method_is_recorded_with_its_answer() -> None:
    kong = RecordingKong({method: method for method in PDK})
    for method in sorted(PDK):
        target = kong
        for part in method.split(".")[1:]:
            target = getattr(target, part)
        assert target("arg", None, "dropped") == method
    assert kong.calls == [(method, ("arg",)) for method in sorted(PDK)]
