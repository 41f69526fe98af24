"""Verdicts: calibration on real data, the ``test`` verb, the report's verdict section.

The simulation trains objcls-cnn (no dropout) on 500 members of the embedded digits, once per
module, scores held-out members and non-members with LOSS and with a passive MINT model on the
output signals, and draws hundreds of query sets from non-members only: the dataset-level test
must reject at most alpha of them (with the binomial margin of the repetition count), and
Benjamini-Hochberg must keep the mean false-discovery proportion at or below q.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from mintaudit.attacks.scores import loss_scores
from mintaudit.cli import main
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import EvaluationError
from mintaudit.evaluation import dataset_test, sample_decisions
from mintaudit.passive import SweepConfig, audit_tap, passive_split
from mintaudit.workdir import null_split, prepare_data, train_model
from mintaudit.report import new_report, render_html
from mintaudit.report.schema import set_verdict
from mintaudit.signals import extract_signals, output_features
from mintaudit.training import TrainConfig

ALPHA = Q = 0.05
REPS = 300


def _margin(reps: int, rate: float = ALPHA) -> float:
    """The 99.9% one-sided binomial upper bound of an observed rate whose true value is ``rate``."""
    return float(stats.binom.ppf(0.999, reps, rate)) / reps


@pytest.fixture(scope="module")
def digits_audit(tmp_path_factory):
    """objcls-cnn over-fitted on 500 digits (40 epochs, no dropout); LOSS and outputs-MINT scores of held-out members and test non-members."""
    out = tmp_path_factory.mktemp("digits")
    ds, splits = prepare_data("digits", out, members=500, external=400, test=897, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 8x8 images: threads gain nothing, and one thread is immune to a busy machine
    try:
        net, info = train_model(
            out,
            ds,
            splits,
            model="objcls-cnn",
            model_kwargs={"dropout": 0.0},
            config=TrainConfig(epochs=40, batch_size=32),
            show_progress=False,
        )
        split = passive_split(splits, known_fraction=0.5, seed=0)
        cache = extract_signals(net, ds, np.unique(split.all_indices()), [], out / "cache", show_progress=False)
        _, det = audit_tap(
            cache,
            split,
            None,
            SweepConfig(detector=DetectorConfig(epochs=30), n_bootstrap=0),
            fuse_outputs=True,
            show_progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    out_ = cache.outputs()
    feats = output_features(out_["logits"], out_["labels"])

    def mint(ids):
        return 1 / (1 + np.exp(-det.decision_function(feats[cache.rows(ids)]).astype(np.float64)))

    def loss(ids):
        rows = cache.rows(ids)
        return loss_scores(out_["logits"][rows].astype(np.float64), out_["labels"][rows])

    scores = {name: (f(split.heldout_members), f(splits.test)) for name, f in (("loss", loss), ("passive-mint", mint))}
    return {"out": out, "info": info, "scores": scores}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["loss", "passive-mint"])
def test_null_query_sets_on_real_data_keep_the_error_rates(digits_audit, method):
    members, nonmembers = digits_audit["scores"][method]
    rng = np.random.default_rng(1)
    rejected = {"mann-whitney (default)": 0, "bonferroni": 0, "binomial": 0}
    fdp_null, fdp_mixed = [], []
    for rep in range(REPS):
        perm = rng.permutation(len(nonmembers))
        null, pool = nonmembers[perm[:500]], nonmembers[perm[500:]]
        query = pool[: [10, 50, 200][rep % 3]]  # non-members only, never in the null
        t = dataset_test(query, null, alpha=ALPHA)
        rejected["mann-whitney (default)"] += t.reject
        rejected["bonferroni"] += min(1.0, 2 * min(t.mann_whitney["p_value"], t.binomial["p_value"])) <= ALPHA
        rejected["binomial"] += t.binomial["p_value"] <= ALPHA
        flags = sample_decisions(query, null, fdr=Q).flagged_bh
        fdp_null.append(float(flags.any()))  # every flag is false: FDP = 1 when anything is flagged
        mixed = np.r_[rng.choice(members, 20, replace=False), pool[:80]]
        flags = sample_decisions(mixed, null, fdr=Q).flagged_bh
        fdp_mixed.append(flags[20:].sum() / max(flags.sum(), 1))
    for name, count in rejected.items():
        assert count / REPS <= _margin(REPS), (name, count)
    assert np.mean(fdp_null) <= _margin(REPS, Q)
    assert np.mean(fdp_mixed) <= Q + 3 * np.std(fdp_mixed) / np.sqrt(REPS)


@pytest.mark.slow
def test_real_member_sets_are_detected(digits_audit):
    members, nonmembers = digits_audit["scores"]["loss"]
    assert digits_audit["info"]["train_accuracy"] >= 0.99
    t = dataset_test(members[:200], nonmembers[:500])
    assert t.reject and t.mann_whitney["auc"] > 0.55 and t.member_fraction["estimate"] > 0


@pytest.mark.slow
def test_the_test_verb_on_digits(digits_audit, capsys):
    out = str(digits_audit["out"])
    base = ["test", "--dataset", "digits", "--out", out, "--quiet"]
    assert main([*base, "--query", "heldout-members", "--method", "loss"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((digits_audit["out"] / "report.json").read_text())
    v = report["verdict"]
    assert v["reject"] and v["sentence"] in printed and "null reference: 448" in printed
    assert v["n_null"] == 448 and v["n_query"] == 250 and v["query"]["truth"] == "members"
    assert main([*base, "--query", "test"]) == 0  # passive MINT on the output signals, fitted and saved
    v = json.loads((digits_audit["out"] / "report.json").read_text())["verdict"]
    assert v["method"] == "passive-mint" and v["layer"] == "outputs" and v["n_query"] == 449
    assert (digits_audit["out"] / "detectors" / "outputs" / "protocol.json").is_file()
    html = (digits_audit["out"] / "report.html").read_text()
    assert html.index("Verdict") < html.index("How to read this") and "n_null = 448" in html


# --------------------------------------------------------------------------------------------
# the ``test`` verb on a tiny npz data set


def _npz(path, n, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


@pytest.fixture
def work(tmp_path, capsys):
    data = _npz(tmp_path / "data.npz", 200)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                data,
                "--model",
                "tiny-cnn",
                "--members",
                "60",
                "--external",
                "40",
                "--test",
                "80",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    return data, out


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mintaudit: error: ")
    return err[0]


def test_test_verb_has_help_with_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["test", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and "mintaudit test" in out and "--query" in out and "--fdr" in out


def test_test_verb_writes_verdict_csv_report_and_html(work, capsys):
    data, out = work
    assert (
        main(
            [
                "test",
                "--dataset",
                data,
                "--out",
                str(out),
                "--query",
                "heldout-members",
                "--method",
                "loss",
                "--fdr",
                "0.1",
                "--quiet",
                "--allow-weak-model",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    v = report["verdict"]
    assert v["sentence"].splitlines()[0] in printed and "(null reference: 40)" in printed
    assert v["n_null"] == 40 and v["null_reference"]["n"] == 40 and v["per_sample"]["fdr"] == 0.1
    lines = (out / "verdict.csv").read_text().splitlines()
    assert lines[0] == "sample_id,score,p_value,flagged_bh,flagged_alpha,n_null"
    assert len(lines) == 1 + v["n_query"] == 31
    ids = [int(line.split(",")[0]) for line in lines[1:]]
    split = passive_split(_splits(data, out), known_fraction=0.5, seed=0)
    assert ids == split.heldout_members.tolist()
    p = np.array([float(line.split(",")[2]) for line in lines[1:]])
    assert ((p >= 1 / 41 - 1e-9) & (p <= 1)).all() and all(line.endswith(",40") for line in lines[1:])
    html = (out / "report.html").read_text()
    assert html.index('class="verdict"') < html.index("<h2>Data</h2>") and "verdict.csv" in html
    assert not list(out.glob(".*.tmp"))


def _splits(data, out):
    from mintaudit.data import Splits, load_dataset

    return Splits.load(out / "splits.json", dataset=load_dataset(data))


def test_query_files_new_samples_and_refused_overlaps(work, tmp_path, capsys):
    data, out = work
    splits = _splits(data, out)
    null, pool = null_split(splits)
    base = ["test", "--dataset", data, "--out", str(out), "--quiet", "--allow-weak-model"]

    (tmp_path / "q.csv").write_text("sample_id,note\n" + "".join(f"{i},x\n" for i in pool[:12]))
    assert main([*base, "--query", str(tmp_path / "q.csv"), "--query-header", "--method", "loss"]) == 0
    assert json.loads((out / "report.json").read_text())["verdict"]["n_query"] == 12
    capsys.readouterr()

    outside = np.setdiff1d(np.arange(200), np.concatenate([splits.members, splits.external, splits.test]))
    np.save(tmp_path / "q.npy", outside[:15])
    assert main([*base, "--query", str(tmp_path / "q.npy"), "--method", "loss"]) == 0  # samples not cached yet
    lines = (out / "verdict.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in lines] == outside[:15].tolist()
    capsys.readouterr()

    new = _npz(tmp_path / "new.npz", 25, seed=9)
    assert main([*base, "--query", new, "--layer", "relu1", "--fuse-outputs"]) == 0
    v = json.loads((out / "report.json").read_text())["verdict"]
    assert v["n_query"] == 25 and v["query"]["kind"] == "dataset" and v["layer"] == "relu1"
    assert v["signal"] == "activations+outputs"
    capsys.readouterr()

    (tmp_path / "bad.txt").write_text(f"{pool[0]}\n{null[3]}\n")
    line = _error(capsys, [*base, "--query", str(tmp_path / "bad.txt"), "--method", "loss"])
    assert "shares 1 sample(s) with the null reference" in line and str(null[3]) in line
    np.save(tmp_path / "known.npy", splits.external[:3])
    line = _error(capsys, [*base, "--query", str(tmp_path / "known.npy")])
    assert "MINT model's training data" in line
    (tmp_path / "junk.txt").write_text("1\ntwo\n")
    assert "not a sample index" in _error(capsys, [*base, "--query", str(tmp_path / "junk.txt")])
    (tmp_path / "far.txt").write_text("5000\n")
    assert "the pool has 200" in _error(capsys, [*base, "--query", str(tmp_path / "far.txt")])
    assert "neither a split role" in _error(capsys, [*base, "--query", "members"])
    assert "needs --query" in _error(capsys, base)
    assert "--layer and --fuse-outputs apply" in _error(
        capsys, [*base, "--query", "test", "--method", "loss", "--layer", "relu1"]
    )
    assert "--alpha must be a finite number in (0, 1)" in _error(capsys, [*base, "--query", "test", "--alpha", "1.5"])


def test_default_layer_is_the_best_validation_auc_and_its_detector_is_reused(work, capsys):
    data, out = work
    assert (
        main(
            [
                "fit",
                "--dataset",
                data,
                "--out",
                str(out),
                "--layer",
                "relu1",
                "--mint-epochs",
                "2",
                "--quiet",
                "--allow-weak-model",
            ]
        )
        == 0
    )
    protocol = out / "detectors" / "relu1" / "protocol.json"
    weights = out / "detectors" / "relu1" / "detector.safetensors"
    assert protocol.is_file()
    before = weights.stat().st_mtime_ns
    assert (
        main(
            [
                "test",
                "--dataset",
                data,
                "--out",
                str(out),
                "--query",
                "test",
                "--mint-epochs",
                "2",
                "--quiet",
                "--allow-weak-model",
            ]
        )
        == 0
    )
    v = json.loads((out / "report.json").read_text())["verdict"]
    assert v["layer"] == "relu1" and v["signal"] == "activations"
    assert weights.stat().st_mtime_ns == before  # reused, not refitted
    assert json.loads((out / "report.json").read_text())["results"]  # the fit's result is kept


# --------------------------------------------------------------------------------------------
# the report: schema and HTML


def _verdict() -> dict:
    rng = np.random.default_rng(0)
    q, null = rng.normal(1, 1, 50), rng.normal(size=300)
    v = dataset_test(q, null).to_dict()
    v.update(
        method="loss",
        signal="outputs",
        layer="outputs",
        query={"source": "heldout-members", "description": "members <b>", "n": 50},
        null_reference={"source": "held-out non-members", "n": 300},
        per_sample={**sample_decisions(q, null).to_dict(), "csv": "verdict.csv"},
    )
    return v


def test_set_verdict_validates() -> None:
    report = new_report(dataset={}, model={}, config={}, command="x")
    v = _verdict()
    set_verdict(report, v)
    assert report["verdict"] == v and report["verdict"] is not v
    for key, bad in (("sentence", ""), ("reject", "yes"), ("p_value", 1.5), ("n_null", 0), ("alpha", 1.0)):
        with pytest.raises(EvaluationError, match=key):
            set_verdict(report, {**v, key: bad})
    with pytest.raises(EvaluationError):
        set_verdict(report, {k: x for k, x in v.items() if k != "n_query"})


def test_html_verdict_in_words_first_then_the_evidence() -> None:
    report = new_report(dataset={"name": "toy"}, model={"name": "m"}, config={}, command="x")
    set_verdict(report, _verdict())
    page = render_html(report)
    section = page[page.index('<section class="verdict"') : page.index("</section>", page.index('class="verdict"'))]
    assert (
        section.index("Evidence of use")
        < section.index("Evidence that these 50 samples")
        < section.index("Evidence</h3>")
    )
    for text in (
        "Mann-Whitney U",
        "Exceedances",
        "Benjamini-Hochberg",
        "Share of members",
        "Assumption",
        "Error rate controlled",
        "(n_null = 300)",
        "<svg",
        "LOSS attack",
    ):
        assert text in section, text
    assert "members &lt;b&gt;" in section and "members <b>" not in section
    assert "flags a lone sample only if" in section  # 50 queries at q 0.05 need 999 null samples; there are 300
    # the null's size beside every p-value: in the sentence, then in the evidence
    assert section.count("p = ") == section.count("against a null reference of 300") + section.count("(n_null = 300)")
