"""The runner every experiment's main() shares: one thread, timed, saved with the same timing keys."""
import json

import torch

import llmbook.experiments as experiments


def test_run_and_save_times_the_run_and_saves_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiments, "RESULTS", tmp_path)
    threads = torch.get_num_threads()
    calls = []

    def run(n, settings_seen):
        calls.append(n)
        settings_seen.append(torch.get_num_threads())
        return {"settings": {"n": n}, "runs": [n * 2]}

    seen = []
    try:
        data = experiments.run_and_save("tiny", run, n=3, settings_seen=seen)
    finally:
        torch.set_num_threads(threads)
    assert calls == [3] and seen == [1]  # called once, with the full settings, on one thread
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved == data and saved["runs"] == [6] and saved["settings"]["n"] == 3
    assert saved["settings"]["wall_seconds"] >= 0 and saved["settings"]["cpu_seconds"] >= 0
    assert "saved" in capsys.readouterr().out


def test_run_and_save_adds_settings_when_the_run_has_none(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments, "RESULTS", tmp_path)
    threads = torch.get_num_threads()
    try:
        data = experiments.run_and_save("bare", lambda: {"runs": []})
    finally:
        torch.set_num_threads(threads)
    assert set(data["settings"]) == {"wall_seconds", "cpu_seconds"}
