import pytest
"""Smoke test of the supervised timing benchmark (numbers are not checked: timings belong in
docs/RESULTS.md, not in tests)."""
from tests.tiny import load_script


def _load(name):
    return load_script("bench", name)


@pytest.mark.slow
def test_vision_epoch_time_runs_every_hook(capsys):
    bench = _load("vision_epoch_time")
    rows = bench.main(["--benchmark", "split_digits", "--methods", "agscl,ewc",
                       "--rounds", "2", "--threads", "1"])
    assert list(rows) == ["finetune", "agscl", "ewc"]          # fine-tuning added as reference
    assert rows["finetune"]["relative_to_finetune"] == 1.0
    for r in rows.values():
        assert len(r["all"]) == 2 and all(t > 0 for t in r["all"])
    assert "seconds per epoch on task 2" in capsys.readouterr().out


@pytest.mark.slow
def test_atari_sps_times_each_regularizer_and_profiles(capsys):
    bench = _load("atari_sps")
    res = bench.main(["--num-envs", "2", "--updates", "2", "--skip-raw", "--torch-threads", "1",
                      "--env-threads", "1", "--regularizer", "finetune,agscl", "--profile", "3"])
    assert list(res["ppo"]) == ["finetune", "agscl"]
    for r in res["ppo"].values():
        assert len(r["units"]) == 2 and r["sps_overall"] > 0
        assert abs(sum(r["time_split"].values()) - 1) < 0.2      # env + inference + update
    import torch
    assert res["args"]["num_envs"] == 2
    assert res["machine"]["gpu"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                                     else None)
    out = capsys.readouterr().out
    assert "PPO agscl" in out and "Self CPU" in out              # the profile's table


def test_atari_sps_on_the_minatar_stream(capsys):
    pytest.importorskip("minatar")
    bench = _load("atari_sps")
    res = bench.main(["--stream", "minatar", "--preset", "minatar_tiny", "--updates", "2",
                      "--raw-steps", "20", "--repeats", "1", "--torch-threads", "1",
                      "--regularizer", "finetune,ewc"])
    assert res["args"]["game"] == "Breakout" and len(res["raw_env_sps"]) == 1
    assert list(res["ppo"]) == ["finetune", "ewc"]
    assert all(r["sps_overall"] > 0 for r in res["ppo"].values())
