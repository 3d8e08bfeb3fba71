from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from synth import synthetic_jets
from torch import nn

from colliderfm.config import TrainConfig, load_config
from colliderfm.data.stream import ConstituentStream
from colliderfm.errors import ConfigError
from colliderfm.train.checkpoint import load_state, load_weights, save_checkpoint
from colliderfm.train.loop import TrainingError, fit, lr_lambda, make_optimizer, param_groups


class DeepSet(nn.Module):
    """A small permutation-invariant model, enough to exercise the loop."""

    def __init__(self, in_dim: int = 13) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(in_dim, 32), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(32, 2)

    def forward(self, x, mask, vectors=None):  # noqa: ANN001, ANN201
        h = self.backbone(x) * mask.unsqueeze(-1)  # [B, P, D]
        return self.head(h.sum(1) / mask.sum(1, keepdim=True).clamp_min(1))  # [B, 2]


def loss_fn(model, batch):  # noqa: ANN001, ANN201
    logits = model(batch.features, batch.mask)
    return F.cross_entropy(logits, batch.labels), {}


def _run(
    out: Path,
    steps: int,
    overrides: list[str] | None = None,
    resume: bool = False,
    model: nn.Module | None = None,
) -> nn.Module:
    cfg = load_config(
        None,
        [
            f"train.max_steps={steps}",
            "train.batch_size=32",
            "train.seed=3",
            "train.log_every=2",
            *(overrides or []),
        ],
    )
    torch.manual_seed(0)
    model = model or DeepSet()
    data = ConstituentStream(
        synthetic_jets(400, seed=1), batch_size=32, seed=3, infinite=True, buffer_size=64
    )
    fit(
        model,
        loss_fn,
        data,
        cfg,
        out,
        steps_per_epoch=5,
        meta={"model": {"task": "test"}},
        resume=resume,
        progress=False,
    )
    return model


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    full = _run(tmp_path / "full", 12)

    class Killed(Exception):
        pass

    calls = {"n": 0}

    def dying_loss(model, batch):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 8:  # dies in the middle of step 8, after step 7 was checkpointed
            raise Killed
        return loss_fn(model, batch)

    cfg = load_config(
        None,
        [
            "train.max_steps=12",
            "train.batch_size=32",
            "train.seed=3",
            "train.log_every=2",
            "train.checkpoint_every=1",
        ],
    )
    torch.manual_seed(0)
    data = ConstituentStream(
        synthetic_jets(400, seed=1), batch_size=32, seed=3, infinite=True, buffer_size=64
    )
    with pytest.raises(Killed):
        fit(
            DeepSet(),
            dying_loss,
            data,
            cfg,
            tmp_path / "part",
            steps_per_epoch=5,
            meta={"model": {"task": "test"}},
            progress=False,
        )
    resumed = _run(tmp_path / "part", 12, resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(
        next(iter(full.state_dict().values())), next(iter(DeepSet().state_dict().values()))
    )


def test_schedule_and_groups() -> None:
    f = lr_lambda(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5, abs=0.01) and f(100) == pytest.approx(0.0, abs=1e-9)
    m = DeepSet()
    groups = param_groups(m, 0.01, {"backbone.": 0.1, "head.": 1.0})
    mults = {g["name"]: (g["lr_mult"], g["weight_decay"]) for g in groups}
    assert mults["backbone."] == (0.1, 0.01) and mults["backbone.:no_decay"] == (0.1, 0.0)
    assert mults["head."] == (1.0, 0.01)


def test_schedule_floor_and_optimizer_choice() -> None:
    f = lr_lambda(100, 10, floor=0.01)
    assert f(9) == pytest.approx(1.0) and f(100) == pytest.approx(0.01)
    assert f(55) == pytest.approx(0.01 + 0.99 * 0.5, abs=0.01)
    assert lr_lambda(100, 10, 0.0)(37) == lr_lambda(100, 10)(37)  # default: unchanged
    groups = param_groups(DeepSet(), 0.01)
    assert isinstance(make_optimizer(groups, TrainConfig()), torch.optim.AdamW)
    sgd = make_optimizer(param_groups(DeepSet(), 0.01), TrainConfig(optimizer="sgd", momentum=0.5))
    assert isinstance(sgd, torch.optim.SGD)
    assert all(g["momentum"] == 0.5 for g in sgd.param_groups)


def test_sgd_run_ends_at_min_lr(tmp_path: Path) -> None:
    opts = ["train.optimizer=sgd", "train.lr=1e-2", "train.min_lr=1e-4", "train.warmup=0.2"]
    _run(tmp_path / "sgd", 10, opts)
    groups = load_state(tmp_path / "sgd" / "last")["optimizer"]["param_groups"]
    assert all(g["momentum"] == 0.9 and "betas" not in g for g in groups)
    assert all(g["lr"] == pytest.approx(1e-4) for g in groups)
    with pytest.raises(ConfigError, match="min_lr"):
        _run(tmp_path / "bad", 2, ["train.lr=1e-3", "train.min_lr=1e-2"])


def test_non_finite_loss_stops_with_step(tmp_path: Path) -> None:
    def bad_loss(model, batch):  # noqa: ANN001, ANN202
        loss, logs = loss_fn(model, batch)
        return loss * float("nan"), logs

    cfg = load_config(None, ["train.max_steps=4", "train.batch_size=32"])
    data = ConstituentStream(synthetic_jets(200), batch_size=32, infinite=True)
    with pytest.raises(TrainingError, match="non-finite loss .* at step 0"):
        fit(DeepSet(), bad_loss, data, cfg, tmp_path, 5, {"model": {}}, progress=False)


def test_checkpoint_survives_crash_during_write(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    m = DeepSet()
    save_checkpoint(tmp_path / "ck", m, {"model": {"task": "test"}})

    import colliderfm.train.checkpoint as ck

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(Exception, match="No space left"):
        save_checkpoint(tmp_path / "ck", DeepSet(), {"model": {"task": "test"}})
    m2 = DeepSet()
    load_weights(m2, tmp_path / "ck")
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ck.tmp")]


def test_compile_switch_compiles_the_backbone_in_place(tmp_path: Path, monkeypatch) -> None:
    """train.compile calls nn.Module.compile on the backbone (no real compilation here: slow)."""
    calls: list[tuple[str, dict]] = []

    def fake_compile(self, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append((type(self).__name__, kwargs))

    monkeypatch.setattr(nn.Module, "compile", fake_compile)
    model = _run(tmp_path / "c", 2, ["train.compile=true"])
    assert calls == [("Sequential", {"dynamic": True})]
    assert set(load_state(tmp_path / "c" / "last")) and "backbone.0.weight" in model.state_dict()
    calls.clear()
    _run(tmp_path / "n", 2)
    assert calls == []


def _fit_on(out: Path, data_seed: int, fingerprint: str, overrides: list[str], resume: bool):  # noqa: ANN202
    """Run the loop on a data stream of the given seed, recording the batches it sees."""
    cfg = load_config(
        None, ["train.max_steps=12", "train.batch_size=32", "train.seed=3", *overrides]
    )
    torch.manual_seed(0)
    model = DeepSet()
    seen: list[float] = []

    def recording_loss(model, batch):  # noqa: ANN001, ANN202
        seen.append(float(batch.features.sum()))
        return loss_fn(model, batch)

    data = ConstituentStream(
        synthetic_jets(400, seed=data_seed), batch_size=32, seed=3, infinite=True, buffer_size=64
    )
    res = fit(
        model,
        recording_loss,
        data,
        cfg,
        out,
        steps_per_epoch=5,
        meta={"model": {"task": "test"}, "data": {"fingerprint": fingerprint}},
        resume=resume,
        progress=False,
    )
    return res, model, seen


def test_stop_at_step_pauses_and_resume_finishes_bit_identical(tmp_path: Path) -> None:
    full, ref, _ = _fit_on(tmp_path / "full", 1, "a", [], False)
    part, _, _ = _fit_on(tmp_path / "p", 1, "a", ["train.stop_at_step=7"], False)
    assert part.paused and part.steps == 7 and not full.paused
    assert load_state(tmp_path / "p" / "last")["step"] == 7
    assert not load_state(tmp_path / "p" / "last")["finished"]
    # without validation the run directory holds the latest weights at the pause
    assert (tmp_path / "p" / "model.safetensors").exists()
    done, model, _ = _fit_on(tmp_path / "p", 1, "a", [], True)  # same data: replayed
    assert done.steps == 12 and not done.paused
    for a, b in zip(ref.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_on_new_data_starts_its_stream_afresh(tmp_path: Path) -> None:
    _fit_on(tmp_path / "r", 1, "chunk0", ["train.stop_at_step=4"], False)
    _, _, fresh = _fit_on(tmp_path / "fresh", 2, "chunk1", [], False)
    res, _, seen = _fit_on(tmp_path / "r", 2, "chunk1", ["train.stop_at_step=8"], True)
    assert res.paused and res.steps == 8
    assert seen == fresh[:4]  # chunk 1's first batches, not batches 5-8 of its stream
    state = load_state(tmp_path / "r" / "last")
    assert state["step"] == 8 and state["scheduler"]["last_epoch"] == 8  # schedule continues


def test_interrupted_chunk_resumes_where_its_own_stream_stopped(tmp_path: Path) -> None:
    # a run on chunk 1 (resumed on it at step 4) pauses mid-chunk and resumes on chunk 1 again:
    # only the batches drawn from chunk 1 are replayed, not the run's whole step count
    _fit_on(tmp_path / "r", 1, "chunk0", ["train.stop_at_step=4"], False)
    _, _, fresh = _fit_on(tmp_path / "fresh", 2, "chunk1", [], False)
    _, _, first = _fit_on(tmp_path / "r", 2, "chunk1", ["train.stop_at_step=6"], True)
    res, _, rest = _fit_on(tmp_path / "r", 2, "chunk1", ["train.stop_at_step=8"], True)
    assert first == fresh[:2] and rest == fresh[2:4]
    assert res.steps == 8 and load_state(tmp_path / "r" / "last")["data_from"] == 4
