"""bench/ceilings.py's FLOP counts against hand counts of the two game networks, and its
ceiling arithmetic on made-up per-op times (the measured numbers belong in docs/RESULTS.md)."""
import pytest
import torch

from tests.tiny import load_script

ceil = load_script("bench", "ceilings")


def test_minatar_network_flops_by_hand():
    from agents.minatar_net import MinAtarActorCritic
    model = MinAtarActorCritic([5, 3])                 # Asterix, Breakout
    fl = ceil.network_flops(model, torch.zeros(2, 10, 10, 10, dtype=torch.uint8), task=1)
    # conv 3x3, 10 -> 16 channels, 10x10 -> 8x8: 64 pixels x 90 x 16; fc 1024 -> 128; task 1's
    # actor 128 -> 3 and critic 128 -> 1 (task 0's 5-action actor is not run)
    conv, fc, heads = 64 * 90 * 16, 16 * 8 * 8 * 128, 128 * 3 + 128
    assert [r["name"] for r in fl["layers"]] == ["conv1", "fc", "heads.1.actor",
                                                  "heads.1.critic"]
    assert [r["input_grad"] for r in fl["layers"]] == [False, True, True, True]
    assert fl["forward"] == 2 * (conv + fc + heads) == 447_488
    # forward + weight gradients + input gradients but conv1's
    assert fl["update"] == 3 * fl["forward"] - 2 * conv == 1_158_144
    assert fl["update_3x"] == 3 * 447_488


def test_atari_network_flops_by_hand():
    from agents.atari_net import ActorCritic
    model = ActorCritic([8, 18], arch="nature")
    fl = ceil.network_flops(model, torch.zeros(2, 4, 84, 84, dtype=torch.uint8), task=1)
    # 84 -(8/4)-> 20 -(4/2)-> 9 -(3/1)-> 7
    macs = [20 * 20 * 32 * 4 * 64, 9 * 9 * 64 * 32 * 16, 7 * 7 * 64 * 64 * 9, 3136 * 512,
            512 * 18, 512]
    assert [r["macs"] for r in fl["layers"]] == macs
    assert fl["forward"] == 2 * sum(macs) == 18_705_408
    assert fl["update"] == 6 * sum(macs) - 2 * macs[0] == 49_562_624


def test_ceilings_arithmetic():
    ops = {"config": {"num_steps": 128, "num_envs": 8, "batch_size": 1024, "update_epochs": 3},
           "flops": {"forward": 1e6, "update": 2e6,
                     "layers": [{"macs": 5e5, "input_grad": False}]},
           "inference_ms": 1.0, "gae_ms": 3.0, "update_unit_ms": 100.0, "env_step_ms": 0.5,
           "env_step_mean_ms": 0.8, "inference_cpu_ms": 1.5, "update_unit_cpu_ms": 190.0,
           "env_step_cpu_ms": 1.2, "cores": 2,
           "minibatch_steps": 12}
    c = ceil.ceilings(ops, {"square_gflops": 100.0, "layers_gflops": [50.0]})
    compute = (129 * 1.0 + 3.0 + 100.0) / 1e3                 # s per unit
    assert c["compute_only"] == pytest.approx(1024 / compute)
    per_step = 1e6 * 129 / 128 + 3 * 2e6                        # FLOPs per env step
    assert c["flop_bound"] == pytest.approx(100e9 / per_step)
    assert c["flop_estimate_layer_rates"] == pytest.approx(50e9 / per_step)
    assert c["flop_bound_with_env"] == pytest.approx(1 / (per_step / 100e9 + 0.1e-3))
    assert c["serial"] == pytest.approx(1024 / (compute + 0.1024))
    assert c["overlap"] == pytest.approx(1024 / max(compute, 0.1024))   # the env's mean, not median
    # sharing 2 cores: CPU seconds (129 x 1.5 + 3 + 190 ms compute, 128 x 1.2 ms env) / 2
    cpu = (129 * 1.5 + 3.0 + 190.0 + 128 * 1.2) / 1e3
    assert c["overlap_on_cores"] == pytest.approx(1024 / (cpu / 2))
    assert c["unit"]["compute_cpu_s"] == pytest.approx((129 * 1.5 + 3.0 + 190.0) / 1e3)
    # exact PPO: the env hides only behind the rollout's inferences, sharing the cores
    rollout = max(0.1024, 0.129, (128 * 1.2 + 129 * 1.5) / 1e3 / 2)
    assert c["overlap_rollout"] == pytest.approx(1024 / (rollout + (3.0 + 100.0) / 1e3))
    # never above the ideal overlap: an idle core cannot make a piece faster than its wall time
    ops["env_step_cpu_ms"] = 0.0
    assert ceil.ceilings(ops, {"square_gflops": 100.0, "layers_gflops": [50.0]})[
        "overlap_on_cores"] == pytest.approx(c["overlap"])


@pytest.mark.slow
def test_the_bench_runs_end_to_end_on_minatar(tmp_path, capsys):
    out = ceil.main(["--stream", "minatar", "--updates", "2", "--inference-calls", "5",
                     "--update-repeats", "1", "--gemm-repeats", "1", "--square", "64",
                     "--json", str(tmp_path / "c.json")])
    text = capsys.readouterr().out
    assert "compute only" in text and "learner SPS" in text
    saved = __import__("json").loads((tmp_path / "c.json").read_text())
    for k in ("compute_only", "flop_bound", "serial", "overlap"):
        assert saved["ceilings"][k] > 0
    assert out is not None
    # float32 by default, whatever the CPU (the default --bf16 auto of train.py is not taken)
    assert saved["per_op"]["config"]["bf16"] is False and ", float32)" in text
    ceil.main(["--stream", "minatar", "--preset", "minatar_tiny", "--updates", "2",
               "--inference-calls", "2", "--update-repeats", "1", "--gemm-repeats", "1",
               "--square", "64", "--bf16", "--json", str(tmp_path / "b.json")])
    saved = __import__("json").loads((tmp_path / "b.json").read_text())
    assert saved["per_op"]["config"]["bf16"] is True
    assert ", bf16 autocast)" in capsys.readouterr().out
