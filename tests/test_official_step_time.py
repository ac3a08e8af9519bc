"""The official-vs-i2i step-time script reads both programs' output right (timestamped lines; no timing)."""

from __future__ import annotations

from i2i_cli.benchmarks.official_step_time import i2i_step_seconds, official_command, official_step_seconds


def test_official_steps_are_timed_between_epoch_ends_after_the_first():
    lines = [(5.0, "End of epoch 1 / 3 \t Time Taken: 5 sec"), (6.0, "saving the model"),
             (21.0, "End of epoch 2 / 3 \t Time Taken: 16 sec"), (37.0, "End of epoch 3 / 3 \t Time Taken: 16 sec")]
    assert official_step_seconds(lines, per_epoch=8) == (37.0 - 5.0) / 16


def test_i2i_steps_are_timed_from_the_first_epochs_end_to_the_run_end_and_to_the_step_before_the_last():
    lines = [(1.0, "cut on cpu (fp32), 8 images, 8 steps/epoch")]
    lines += [(1.0 + k, f"train cut:  {k}/12 ({k * 100 // 12}%)  1.0/s  elapsed {k} s") for k in range(1, 13)]
    lines.insert(9, (9.5, "train cut:  8/12 (66%)  1.0/s  elapsed 9 s"))  # a heartbeat repeat: not the step's end
    lines += [(20.0, "cut: 12 steps in 19.0 s")]
    total, steady = i2i_step_seconds(lines, per_epoch=8, method="cut")
    assert total == (20.0 - 9.0) / 4 and steady == (12.0 - 9.0) / 3


def test_official_command_names_the_checkout_and_runs_jz_models_through_the_launcher(monkeypatch, tmp_path):
    monkeypatch.setenv("I2I_OFFICIAL_CUT", str(tmp_path / "cut"))
    command, checkout = official_command("fastcut", 16, 8, tmp_path / "data", tmp_path)
    assert checkout == tmp_path / "cut" and command[2] == "train.py"
    assert command[command.index("--CUT_mode") + 1] == "FastCUT" and command[command.index("--n_epochs") + 1] == "2"
    monkeypatch.setenv("I2I_OFFICIAL_JZ_MODELS", str(tmp_path / "jz"))
    command, checkout = official_command("cyclegan", 64, 8, tmp_path / "data", tmp_path)
    assert checkout == tmp_path / "jz" and command[2] == "-c" and "--norm" in command[3]
    assert command[command.index("--model") + 1] == "cycle_gan" and command[command.index("--n_epochs") + 1] == "8"
