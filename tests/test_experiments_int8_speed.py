"""The int8-speed experiment at toy size: its rows, and that its main refuses the pinned path."""
import pytest

from llmbook.experiments import int8_speed


def test_run_times_every_layer_shape_and_every_variant_of_the_model():
    data = int8_speed.run(layers=(("toy", 32, 48),), rows=(1, 4), new_tokens=4, repeats=1)
    assert [(r["rows"], r["in"], r["out"]) for r in data["layers"]] == [(1, 32, 48), (4, 32, 48)]
    for row in data["layers"]:
        assert all(row[k] > 0 for k in ("float32_ms", "int8_ms", "int4_ms"))
    assert set(data["model"]) == {"float32", "int8", "int4"}
    assert data["model"]["float32"]["same_greedy_tokens_as_float32"] is True
    assert data["settings"]["pinned"] is True  # the tests run on the pinned path


def test_group_size_must_divide_every_layer():
    with pytest.raises(ValueError, match="in_features=40 is not a multiple of group_size=32"):
        int8_speed.run(layers=(("odd", 40, 8),), rows=(1,), repeats=1)


def test_main_refuses_the_pinned_path(monkeypatch):
    monkeypatch.delenv("LLMBOOK_NUMERICS", raising=False)
    with pytest.raises(SystemExit, match="LLMBOOK_NUMERICS=native"):
        int8_speed.main()
