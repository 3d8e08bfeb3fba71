from pathlib import Path

import numpy as np
import pytest
from synth import synthetic_jets, tiny_finetune_config, write_splits

from colliderfm.config import load_config
from colliderfm.errors import ConfigError, DataError
from colliderfm.finetune.cwola import mixture_indices, prepare_cwola
from colliderfm.recipes.finetune import run_finetune
from colliderfm.train.checkpoint import read_meta


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(
        tmp_path_factory.mktemp("cwola"), (2400, 300, 600), seed=11, rows_per_shard=700
    )


def _cfg(data: Path, *extra: str):  # noqa: ANN202
    return tiny_finetune_config(data, "finetune.cwola=true", *extra)


def test_mixture_fractions_are_exact_disjoint_and_reproducible() -> None:
    labels = np.random.default_rng(0).integers(-1, 2, size=3000)  # -1: unlabelled, never used
    a, b = mixture_indices(labels, (0.7, 0.3), 1000, seed=4)
    assert len(a) == len(b) == 500
    assert np.mean(labels[a] == 1) == 0.7 and np.mean(labels[b] == 1) == 0.3
    assert (labels[a] >= 0).all() and (labels[b] >= 0).all()
    assert not set(a) & set(b)
    a2, b2 = mixture_indices(labels, [0.7, 0.3], 1000, seed=4)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    a3, _ = mixture_indices(labels, [0.7, 0.3], 1000, seed=5)
    assert not np.array_equal(a, a3)
    # other fractions, signal class 0, and "as many as possible"
    a, b = mixture_indices(labels, (0.9, 0.1), 400, seed=0, signal_class=0)
    assert np.mean(labels[a] == 0) == 0.9 and np.mean(labels[b] == 0) == 0.1
    a, b = mixture_indices(labels, (0.7, 0.3), None, seed=0)
    n_sig, n_bkg = (labels == 1).sum(), (labels == 0).sum()
    assert len(a) == len(b) and len(a) + len(b) >= min(n_sig, n_bkg) * 2 - 4
    with pytest.raises(ValueError, match="only"):
        mixture_indices(labels, (0.7, 0.3), 2 * len(labels), seed=0)


def test_bad_fractions_name_the_key(data: Path) -> None:
    for bad in ("[0.3,0.7]", "[0.5]", "[1.5,0.2]"):
        with pytest.raises(ConfigError, match="finetune.cwola_fractions"):
            prepare_cwola(_cfg(data, f"finetune.cwola_fractions={bad}"))
    with pytest.raises(ConfigError, match="finetune.cwola_fractions"):
        load_config(None, ["finetune.cwola_fractions=abc"])
    with pytest.raises(ConfigError, match="finetune.cwola_samples"):
        prepare_cwola(_cfg(data, f"finetune.cwola_samples=[{data / 'train'}]"))


def test_prepared_mixtures_match_request(data: Path) -> None:
    cw = prepare_cwola(_cfg(data, "finetune.n_train=600", "train.seed=3"))
    assert cw.info["sizes"] == [300, 300]
    assert cw.info["fractions"] == [0.7, 0.3]
    assert np.bincount(cw.chunk.label).tolist() == [300, 300]  # mixture ids, balanced
    again = prepare_cwola(_cfg(data, "finetune.n_train=600", "train.seed=3"))
    assert np.array_equal(cw.chunk.px, again.chunk.px)
    with pytest.raises(DataError, match="only"):
        prepare_cwola(_cfg(data, "finetune.n_train=100000"))


def test_cwola_run_learns_true_labels(data: Path, tmp_path: Path) -> None:
    summary = run_finetune(_cfg(data, "train.epochs=3"), tmp_path / "cw", progress=False)
    assert summary["cwola"]["fractions"] == pytest.approx([0.7, 0.3], abs=1e-3)
    # trained on mixture ids only, scored on true labels
    assert summary["test"]["auc"] > 0.7, summary["test"]
    assert summary["best"]["val_auc"] > 0.7
    meta = read_meta(tmp_path / "cw")
    assert meta["model"]["classes"] == ["QCD", "Tbqq"]
    assert meta["config"]["finetune"]["cwola"] is True


def _write(path: Path, chunk) -> None:  # noqa: ANN001
    from colliderfm.data.shards import ShardWriter

    with ShardWriter(path, "jets", ["QCD", "Tbqq"], {"generator": "synthetic"}) as w:
        w.write_chunk(chunk)


def test_user_given_samples_and_init(data: Path, tmp_path: Path) -> None:
    jets = synthetic_jets(2400, seed=21)
    sig, bkg = np.flatnonzero(jets.label == 1), np.flatnonzero(jets.label == 0)
    a = np.sort(np.r_[sig[:560], bkg[:240]])  # 70% signal
    b = np.sort(np.r_[sig[560:800], bkg[240:800]])  # 30% signal
    _write(tmp_path / "A", jets.take(a))
    _write(tmp_path / "B", jets.take(b))
    run_finetune(
        load_config(
            None,
            [
                f"data.train={data / 'train'}",
                "model.preset=tiny",
                "model.pair_features=false",
                "train.max_steps=2",
            ],
        ),
        tmp_path / "pre",
        progress=False,
    )
    cfg = _cfg(
        data,
        "data.train=null",
        f"finetune.cwola_samples=[{tmp_path / 'A'},{tmp_path / 'B'}]",
        f"finetune.init={tmp_path / 'pre'}",
        "finetune.n_train=1200",
        "train.epochs=3",
    )
    summary = run_finetune(cfg, tmp_path / "cw", progress=False)
    assert summary["cwola"]["source"] == "samples"
    assert summary["cwola"]["sizes"] == [600, 600]
    assert summary["cwola"]["fractions"][0] > 0.6 > 0.4 > summary["cwola"]["fractions"][1]
    assert summary["test"]["auc"] > 0.7, summary["test"]


def test_cli_cwola_flag(data: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from colliderfm.cli import app

    (tmp_path / "c.yaml").write_text(
        f"data: {{train: {data / 'train'}, val: {data / 'val'}}}\n"
        "model: {preset: tiny, pair_features: false}\n"
        "train: {batch_size: 32, max_steps: 2}\n"
    )
    args = ["finetune", "--config", str(tmp_path / "c.yaml"), "--init", "none"]
    res = CliRunner().invoke(
        app, [*args, "--cwola", "--n-train", "200", "--out", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{\n") :])  # after any log lines
    assert summary["cwola"]["sizes"] == [100, 100] and summary["n_train"] == 200
