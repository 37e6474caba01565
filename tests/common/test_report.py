import json
import shutil

import pytest

from common import report
from common.lifecycle import results
from tests.common.test_results import record

META = {"title": "Toy paper", "citation": "A. Author. Toy. 2020", "source": "Table 1", "metric": "error",
        "metric_label": "error (%)", "scale": 100, "lower_is_better": True,
        "curves": [["accuracy", "train error", True]], "paper_values": {"v1": 10.0, "v2": 5.0},
        "variant_order": ["v1", "v2"], "paper_preset": "paper"}


@pytest.fixture
def repo(tmp_path):
    papers = tmp_path / "papers"
    (papers / "toy").mkdir(parents=True)
    (papers / "toy" / "paper.json").write_text(json.dumps(META))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Toy\n\n{report.README_START}\n{report.README_END}\n\nmore text\n")
    return tmp_path, tmp_path / "results", papers, readme


def _write(results_dir, seed, error, preset="paper", status="completed", changes=None, wall=None, device=None):
    r = record(preset=preset, final={"error": error}, status=status,
               history=[{"epoch": 1, "accuracy": 0.5}, {"epoch": 2, "accuracy": 0.7}])
    if device is not None:
        r["device"] = {**r["device"], "name": device}
    if wall is not None:
        r["wall_time_s"] = wall
    r["recipe_changes"] = changes or {}
    r["seed"] = seed
    r["config"]["seed"] = seed
    r["config_hash"] = f"{preset}-{changes}-{seed}"  # a configuration per seed, as make_record hashes them
    return results.write(r, results_dir)


def test_summary_mean_std_over_seeds_and_missing_rows(repo):
    _, res, papers, readme = repo
    for seed, err in ((0, 0.10), (1, 0.12), (2, 0.14)):
        _write(res, seed, err)
    _write(res, 3, None, status="failed")
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| v1 | paper (paper's recipe) | 12.00 ± 2.00 | 10.0 | 3 (+1 failed) |" in text
    assert "| v2 | paper (paper's recipe) | not run yet | 5.0 | 0 |" in text


def test_a_configuration_without_data_says_so_and_why_until_it_runs(repo):
    _, res, papers, readme = repo
    (papers / "toy" / "paper.json").write_text(json.dumps({**META, "no_data": {"v3": "its files are not here"}}))
    _write(res, 0, 0.10)
    out = report.render(res, papers, readme, res, draw=False)
    text = out[papers / "toy" / "REPORT.md"]
    assert "| v3 | paper (paper's recipe) | no data | – | 0 |" in text
    assert "- No data for v3: its files are not here." in text
    assert "| v2 | paper (paper's recipe) | not run yet |" in text
    assert "| v3 | error (%) | paper | no data | – | – | no data |" in out[readme]


def test_shortened_runs_are_labelled(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.3, preset="quick")
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| v1 | quick (not the paper's recipe) | 30.00 |" in text


def test_wall_time_under_a_minute_is_given_in_seconds_not_as_0_min(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.1, wall=18.0)
    _write(res, 1, 0.1, wall=24.0)
    _write(res, 0, 0.1, preset="quick", wall=150.0)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| paper (paper's recipe) |" in text and "| 21 s |" in text and "0 min" not in text
    assert "| 2 min |" in text


def test_custom_runs_with_different_changes_are_separate_rows(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.3, preset="quick-custom", changes={"learning_rate": 0.001, "steps": 300})
    _write(res, 0, 0.5, preset="quick-custom", changes={"learning_rate": 0.003, "steps": 300})
    rendered = report.render(res, papers, readme, res, draw=True)
    text = rendered[papers / "toy" / "REPORT.md"]
    assert "| v1 | quick-custom (learning_rate=0.001, steps=300) (not the paper's recipe) | 30.00 |" in text
    assert "| v1 | quick-custom (learning_rate=0.003, steps=300) (not the paper's recipe) | 50.00 |" in text
    assert (res / "toy" / "figures" / "v1_quick-custom_learning_rate_0.001_steps_300.png").exists()
    for path, body in rendered.items():
        path.write_text(body)
    assert report.check(res, papers, readme) == []  # the report links the figures it drew


def test_write_then_check_then_stale(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.1)
    for path, text in report.render(res, papers, readme, res, draw=True).items():
        path.write_text(text)
    assert report.check(res, papers, readme) == []
    assert (res / "toy" / "figures" / "v1_paper.png").stat().st_size > 1000
    assert "more text" in readme.read_text() and "[toy](papers/toy/REPORT.md)" in readme.read_text()
    _write(res, 1, 0.2)
    stale = report.check(res, papers, readme)
    assert str(papers / "toy" / "REPORT.md") in stale and str(readme) in stale


def test_check_notices_a_missing_figure(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.1)
    for path, text in report.render(res, papers, readme, res, draw=True).items():
        path.write_text(text)
    shutil.rmtree(res / "toy" / "figures")
    assert any("missing figure" in s for s in report.check(res, papers, readme))


def test_smoke_runs_stay_out_of_the_readme_table_but_not_the_report(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.3, preset="smoke")
    _write(res, 0, 0.4, preset="smoke-custom", changes={"steps": 3})
    rendered = report.render(res, papers, readme, res, draw=False)
    assert "smoke" not in rendered[readme]
    assert "| v1 | smoke (not the paper's recipe) | 30.00 |" in rendered[papers / "toy" / "REPORT.md"]


def test_unknown_paper_json_key_is_an_error(repo):
    _, res, papers, readme = repo
    (papers / "toy" / "paper.json").write_text(json.dumps({**META, "metrc": "error"}))
    with pytest.raises(ValueError, match="unknown key.*metrc.*PAPER_JSON"):
        report.render(res, papers, readme, res, draw=False)


def test_runs_from_a_dirty_tree_or_resumed_under_changed_code_are_marked(repo):
    _, res, papers, readme = repo
    clean = {"commit": "a" * 40, "dirty": False}
    path = _write(res, 0, 0.1)
    body = json.loads(path.read_text())
    body.update(sessions=[{**clean, "started": "s"}, {"commit": "b" * 40, "dirty": False, "started": "t"}],
                code_changed_between_sessions=["common/lifecycle/run.py"])
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| v1 | paper (paper's recipe) | 10.00† |" in text and "aaaaaaa → bbbbbbb (code changed)" in text
    body.update(sessions=[{**clean, "started": "s"}, {"commit": "b" * 40, "dirty": False}],
                code_changed_between_sessions=[])  # other papers' code changed: nothing to flag
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| 10.00 |" in text and "†" not in text
    body.update(sessions=[{**clean, "started": "s"}, {"commit": "b" * 40, "dirty": False}],
                code_changed_between_sessions=["papers/toy/README.md", "papers/toy/REPORT.md"])
    path.write_text(json.dumps(body))  # an older record that listed documentation: nothing to flag
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| 10.00 |" in text and "†" not in text and "(code changed)" not in text
    body.update(sessions=[{**clean, "dirty": True}], code_changed_between_sessions=[])
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "10.00†" in text and "aaaaaaa+dirty" in text and "made from a modified tree" in text


def test_a_row_whose_runs_ran_different_versions_of_the_papers_code_is_marked(repo, monkeypatch):
    _, res, papers, readme = repo
    for seed, commit in ((0, "a"), (1, "b")):
        path = _write(res, seed, 0.1 + seed / 100)
        body = json.loads(path.read_text())
        body.update(git={"commit": commit * 40, "dirty": False})
        path.write_text(json.dumps(body))
    asked = []

    def changed(commits, paths):
        asked.append((commits, paths))
        return ["papers/toy/model.py", "papers/toy/README.md"] if "papers/toy" in paths else []

    monkeypatch.setattr(report.repro, "changed_files", changed)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| v1 | paper (paper's recipe) | 10.50 ± 0.71§ |" in text
    assert "§ The runs of this row ran different versions of the paper's code" in text
    assert asked and all(a == (["a" * 40, "b" * 40], ["papers/toy"]) for a in asked)  # the report and README
    monkeypatch.setattr(report.repro, "changed_files", lambda commits, paths: ["papers/toy/README.md"])
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| 10.50 ± 0.71 |" in text and "§" not in text  # documentation only: the same program


def test_a_recipe_partly_ours_is_labelled_so_not_as_the_papers(repo):
    _, res, papers, readme = repo
    _write(res, 0, 0.1)
    for ours, label in ((True, "our recipe for the paper's protocol"), (["v2"], "paper's recipe")):
        (papers / "toy" / "paper.json").write_text(json.dumps({**META, "recipe_ours": ours}))
        out = report.render(res, papers, readme, res, draw=False)
        assert f"| v1 | paper ({label}) | 10.00 |" in out[papers / "toy" / "REPORT.md"]
        assert f"| v2 | paper ({'our recipe for the paper' + chr(39) + 's protocol'}) | not run yet |" in out[
            papers / "toy" / "REPORT.md"]


def test_sample_scores_pooled_over_different_score_network_files_are_marked(repo):
    _, res, papers, readme = repo
    meta = {**META, "metric": "score", "metric_label": "score", "scale": 1,
            "extra_metrics": [["fd", "FD", 1], ["ll", "log-likelihood", 1]],
            "score_network_metrics": ["score", "fd"]}
    (papers / "toy" / "paper.json").write_text(json.dumps(meta))
    paths = []
    for seed, score, digest in ((0, 9.0, "a" * 64), (1, 9.5, "a" * 64)):
        paths.append(_write(res, seed, None))
        body = json.loads(paths[-1].read_text())
        body["final"] = {"score": score, "fd": 10.0 + seed, "ll": 100.0 + seed, "score_network_sha256": digest}
        paths[-1].write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| v1 | paper (paper's recipe) | 9.25 ± 0.35 | " in text  # the summary; the extras in their own table
    assert "| v1 | paper (paper's recipe) | 10.5 ± 0.7 | 100.5 ± 0.7 |" in text
    assert "‡" not in text and "| aaaaaaaa |" in text
    body["final"]["score_network_sha256"] = "b" * 64  # seed 1 scored by another file
    paths[-1].write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    # the scores are marked, the log-likelihood (no score network) is not
    assert "| v1 | paper (paper's recipe) | 9.25 ± 0.35‡ | " in text
    assert "| v1 | paper (paper's recipe) | 10.5 ± 0.7‡ | 100.5 ± 0.7 |" in text
    assert "different score-network files" in text and "| bbbbbbbb |" in text


def test_the_hardware_names_thread_pools_set_by_environment_variable_in_each_session(repo):
    _, res, papers, readme = repo
    path = _write(res, 0, 0.1)
    body = json.loads(path.read_text())
    oneDNN_only = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    body["device"]["environment"] = oneDNN_only
    body["versions"]["tf_onednn"] = "1"
    one_thread = {**oneDNN_only, "TF_NUM_INTRAOP_THREADS": "1"}
    body["sessions"] = [{"commit": "a" * 40, "dirty": False, "environment": oneDNN_only},
                        {"commit": "a" * 40, "dirty": False, "environment": one_thread}]
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert " / tensorflow + oneDNN (intra-op threads default/1) |" in text
    body["sessions"] = [{"commit": "a" * 40, "dirty": False}]  # a session before environments were recorded
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert " / tensorflow + oneDNN |" in text and "threads" not in text


def test_every_run_says_how_many_sessions_it_took_once_one_was_resumed(repo):
    _, res, papers, readme = repo
    _write(res, 1, 0.2)
    path = _write(res, 0, 0.1)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| sessions |" not in text  # every run finished in the process that started it
    body = json.loads(path.read_text())
    body["sessions"] = [{"commit": "a" * 40, "dirty": False, "started": f"s{i}"} for i in range(6)]
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| wall (min) | sessions | commit |" in text
    rows = {line.split(" | ")[2]: line.split(" | ") for line in text.splitlines() if line.startswith("| v1 | paper |")}
    assert rows["0"][-3] == "6" and rows["1"][-3] == "1"


def test_a_repeated_seed_counts_once_and_a_bad_file_is_named_not_fatal(repo):
    _, res, papers, readme = repo
    for seed, err in ((0, 0.10), (0, 0.30), (1, 0.14)):  # seed 0 twice: a repeat
        path = _write(res, seed, err)
        body = json.loads(path.read_text())
        body["config_hash"] = f"hash-of-seed-{seed}"
        path.write_text(json.dumps(body))
    (res / "toy" / "broken.json").write_text('{"paper": "toy", "varia')
    with pytest.warns(UserWarning, match="broken.json is skipped"):
        text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| v1 | paper (paper's recipe) | 22.00 ± 11.31 | 10.0 | 2 (+1 repeated, latest used) |" in text
    stale = report.check(res, papers, readme)
    assert any("broken.json is skipped" in s for s in stale)


def test_readme_without_markers_is_an_error(repo):
    _, res, papers, readme = repo
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        report.render(res, papers, readme, res, draw=False)


GROUPED = {**META, "lower_is_better": False, "scale": 1, "metric": "ll", "metric_label": "log p(x)",
           "extra_metrics": [["gap_a", "a", 1], ["k", "k", None]], "paper_values": {}, "paper_rows": ["v1"],
           "curves": [["bound", "train", False]], "curve_group": "dataset", "curve_x": "seen",
           "claims": [{"claim": "Keeps improving.", "measure": "gain", "gain": "bound", "holds_if": [">", 0]},
                      {"claim": "No overfitting.", "measure": "gap", "difference": ["gap_a", "gap_b"],
                       "holds_if": ["<", 2]}]}


def _write_grouped(results_dir, variant, seed, bounds, gap_a, figures=None):
    r = record(preset="quick", final={"ll": -100.0 - seed, "gap_a": gap_a, "gap_b": 0.0, "k": 5000},
               history=[{"epoch": i + 1, "bound": b, "seen": 100 * (i + 1)} for i, b in enumerate(bounds)])
    r.update(variant=variant, seed=seed, figures=figures or {}, config_hash=f"{variant}-{seed}")
    r["config"].update(seed=seed, dataset="ds")
    return results.write(r, results_dir)


def test_extra_metrics_grouped_curves_claims_and_run_figures(repo):
    _, res, papers, readme = repo
    (papers / "toy" / "paper.json").write_text(json.dumps(GROUPED))
    _write_grouped(res, "v1", 0, [-120, -110, -105, -100], 1.0, {"samples": "figures/s.png"})
    _write_grouped(res, "v1", 1, [-120, -110, -105, -104], 2.0)
    _write_grouped(res, "v2", 0, [-120, -110, -112, -115], 5.0)
    out = report.render(res, papers, readme, res, draw=True)
    text = out[papers / "toy" / "REPORT.md"]
    assert "| v1 | paper (paper's recipe) | not run yet |" in text
    assert "| v1 | quick (not the paper's recipe) | -100.50 ± 0.71 | " in text
    assert "| v1 | quick (not the paper's recipe) | 1.5 ± 0.7 | 5000 |" in text
    assert (res / "toy" / "figures" / "ds_quick.png").exists() and "figures/ds_quick.png" in text
    assert "| v1 | quick | 8.00 [-17.41, 33.41] | 2 | inconclusive |" in text
    assert "| v2 | quick | -5.00 (no interval) | 1 | one run: no verdict |" in text
    assert "| v2 | quick | 5.00 (no interval) | 1 | one run: no verdict |" in text
    assert "Of 1 rows judged: 0 support the claim, 0 contradict it, 1 are inconclusive. 1 with one run each are " \
           "not judged." in text
    assert "![v1 quick samples](../../results/toy/figures/s.png)" in text
    assert "v2 quick samples" not in text


def test_a_claim_is_supported_only_when_its_interval_clears_threshold_and_margin():
    # mean 11, sd 1, n 3: t(0.975, 2) = 4.303, so the 95 % interval is 11 +- 2.48
    assert report._verdict([10, 11, 12], ">", 0, 0) == ("supports", "11.00 [8.52, 13.48]")
    assert report._verdict([10, 11, 12], ">", 0, 9)[0] == "inconclusive"  # 8.52 is not beyond 0 + 9
    assert report._verdict([10, 11, 12], ">", 15, 0)[0] == "**contradicts**"
    assert report._verdict([10, 11, 12], "<", 20, 5)[0] == "supports"
    # two runs: t(0.975, 1) = 12.71 makes the interval wide
    assert report._verdict([10, 6], ">", 0, 0) == ("inconclusive", "8.00 [-17.41, 33.41]")
    # one run has no interval: its value is shown, and no verdict is given, however far from the threshold
    assert report._verdict([-1.5], ">", 0, 1) == ("one run: no verdict", "-1.50 (no interval)")
    assert report._verdict([10, 11, 12], ">", 0, 0, runs=1)[0] == "one run: no verdict"  # three folds of one run


def test_rows_of_one_run_are_shown_but_left_out_of_the_tally():
    def run(variant, seed, gain):
        r = record(preset="quick", final={"a": gain, "b": 0.0})
        r.update(variant=variant, seed=seed, _path=f"{variant}-{seed}.json")
        return r

    claim = {"claim": "a beats b.", "measure": "a minus b", "difference": ["a", "b"], "holds_if": [">", 0]}
    runs = [run("v1", 0, 10.0), run("v1", 1, 11.0), run("v1", 2, 12.0), run("v2", 0, -5.0)]
    text = "\n".join(report._claims(runs, {"claims": [claim]}))
    assert "| v2 | quick | -5.00 (no interval) | 1 | one run: no verdict |" in text
    assert "Of 1 rows judged: 1 support the claim, 0 contradict it, 0 are inconclusive. 1 with one run each are " \
           "not judged." in text


def test_a_correlation_claim_needs_every_run_significant_on_one_side():
    assert report._correlation_verdict([(0.9, 0.001), (0.8, 0.01)], ">", 0) == ("supports", "ρ 0.85 (p 0.001-0.01)")
    assert report._correlation_verdict([(0.9, 0.001), (0.2, 0.5)], ">", 0)[0] == "inconclusive"
    assert report._correlation_verdict([(-0.9, 0.001), (-0.7, 0.02)], ">", 0)[0] == "**contradicts**"
    # ranks of a: 1 2 3 4, of b: 1 2 4 3 (the epoch without b is dropped): rho = 1 - 6 * 2 / (4 * 15)
    history = [{"a": 1, "b": 2}, {"a": 2, "b": 5}, {"a": 3}, {"a": 4, "b": 7}, {"a": 5, "b": 6}]
    rho, p = report._spearman({"history": history}, {"correlation": ["a", "b"]})
    assert rho == pytest.approx(0.8) and p > report.SIGNIFICANCE  # 0.8 on four points is not significant


def test_extra_metrics_and_claims_can_be_scaled():
    run = {"final": {"acc": 0.25}, "config": {"fold": 3}}
    assert report._extra_value(run, ["acc", "accuracy (%)", 1, 100]) == 25
    assert report._extra_value(run, ["acc", "accuracy", 2]) == 0.25
    assert report._extra_value({"final": {}, "config": {}}, ["acc", "accuracy (%)", 1, 100]) is None
    assert report._extra_value(run, ["config.fold", "fold", None]) == 3
    spec = {"difference": ["a", "b"], "scale": 100}
    assert report._claim_value({"final": {"a": 0.6, "b": 0.5}}, spec) == pytest.approx(10.0)


def test_claims_can_be_judged_by_rank_correlation_over_epochs():
    history = [{"w": w, "d": d} for w, d in [(3, 9), (2, 8), (None, 7), (1, 5), (0.5, 6)]]
    rho = report._claim_value({"history": history}, {"correlation": ["w", "d"]})
    assert rho == pytest.approx(0.8)  # ranks (4,3,2,1) vs (4,3,1,2)
    assert report._claim_value({"history": history[:2]}, {"correlation": ["w", "d"]}) is None


def test_a_claim_between_two_variants_pairs_their_runs_by_seed():
    def run(variant, seed, accuracy, preset="quick"):
        r = record(preset=preset, final={"accuracy": accuracy})
        r.update(variant=variant, seed=seed, _path=f"{variant}-{seed}.json")
        return r

    runs = [run("b", 0, 0.80), run("c", 0, 0.70), run("b", 1, 0.90), run("c", 1, 0.75), run("b", 2, 0.5),
            run("c", 3, 0.1), run("b", 0, 0.2, "paper")]  # seeds 2 and 3 have no partner; paper has no c
    claim = {"claim": "b beats c.", "measure": "b minus c (points)", "between": ["b", "c"], "key": "accuracy",
             "scale": 100, "holds_if": [">", 0], "margin": 1}
    text = "\n".join(report._claims(runs, {"claims": [claim]}))
    # the differences 10 and 15 over seeds 0 and 1: mean 12.5, t(0.975, 1) * 3.54 / sqrt(2) = 31.77
    assert "| b minus c | quick | 12.50 [-19.27, 44.27] | 2 | inconclusive |" in text
    assert "| paper |" not in text
    assert "Not judged yet" in "\n".join(report._claims(runs, {"claims": [{**claim, "between": ["b", "x"]}]}))


def test_a_claim_between_cross_validated_variants_pairs_their_runs_by_seed_and_fold():
    def run(variant, seed, folds):
        r = record(preset="paper", final={"accuracy": sum(folds) / len(folds), "fold_accuracies": folds})
        r.update(variant=variant, seed=seed, _path=f"{variant}-{seed}.json")
        return r

    runs = [run("b", 0, [0.8, 0.6]), run("c", 0, [0.7, 0.6]), run("b", 1, [0.9, 0.7]), run("c", 1, [0.8, 0.5])]
    claim = {"claim": "b beats c.", "measure": "b minus c (points)", "between": ["b", "c"], "key": "accuracy",
             "fold_key": "fold_accuracies", "scale": 100, "holds_if": [">", 0]}
    text = "\n".join(report._claims(runs, {"claims": [claim]}))
    # differences 10, 0, 10, 20 (seed 0 folds 1-2, seed 1 folds 1-2): mean 10, sd 8.16, t(0.975, 3) = 3.182
    assert "| b minus c | paper | 10.00 [-2.99, 22.99] | 2 (4 seed-fold pairs) | inconclusive |" in text
    assert "paired by seed and by fold" in text
    one_seed = "\n".join(report._claims(runs[:2], {"claims": [claim]}))
    assert "| b minus c | paper | 5.00 (no interval) | 1 (2 seed-fold pairs) | one run: no verdict |" in one_seed


def _write_benchmark(results_dir, final, field, value):
    """A benchmark record whose config sets `field` to `value`, or lacks it (None: a record from before the
    field existed)."""
    r = record(preset="benchmark", final=final)
    r["kind"] = "benchmark"
    r["config"].pop(field, None)
    if value is not None:
        r["config"][field] = value
    return results.write(r, results_dir)


def test_benchmark_rows_say_which_batch_normalisation_once_one_ran_without_the_fused_kernel(repo):
    """A step benchmark timed with --fused_batchnorm=false beside the default gets a column saying which batch
    normalisation each row ran; records from before the field existed ran Keras' ops."""
    _, res, papers, readme = repo
    for fused in (None, False, True):
        _write_benchmark(res, {"title": "Step cost", "summary": {"ms per step": "10"}}, "fused_batchnorm", fused)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    cells = [line.split(" | ")[3] for line in text.splitlines() if line.startswith("| v1 |") and "ms" not in line
             and "10 |" in line]
    assert sorted(cells) == ["no", "no (older code)", "yes"]
    assert "| model | device | backend | fused batch norm | ms per step |" in text


def test_throughput_rows_say_whether_tf_data_was_autotuned_and_list_the_validation_passes(repo):
    _, res, papers, readme = repo
    for autotune, passes in ((None, None), (True, [2.8, 5.2]), (False, [2.7, 2.9])):
        final = {"pipeline_images_per_s": 600.0, "in_memory_images_per_s": 650.0, "pipeline_overhead": 0.077}
        if passes:
            final.update(validation_pass_s=min(passes), all_measurements={"validation_pass_s": passes})
        _write_benchmark(res, final, "tf_data_autotune", autotune)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| v1 |") and "| 600 |" in line]
    assert sorted((row[5], row[9]) for row in rows) == [("no", "2.7, 2.9"), ("yes", "2.8, 5.2"),
                                                        ("yes (older code)", "–")]
    assert "| batch | tf.data autotune | pipeline (img/s) |" in text and "| validation pass (s) |" in text


TIMED = {**META, "time_to_accuracy": {"presets": ["paper", "fast"],
                                      "curves": [["test_accuracy", "test error"], ["val_accuracy", "val error"]],
                                      "exclude": ["test_eval_s"]}}


def _write_timed(results_dir, preset, seed, history):
    r = record(preset=preset, final={"error": 0.1}, history=history)
    r.update(seed=seed, config_hash=f"{preset}-{seed}")
    r["config"]["seed"] = seed
    return results.write(r, results_dir)


def test_time_to_accuracy_draws_each_run_against_training_time_less_evaluations():
    timed = {"history": [{"epoch": 1, "epoch_time_s": 60.0, "test_eval_s": 6.0, "test_accuracy": 0.5,
                          "val_accuracy": 0.9},
                         {"epoch": 2, "epoch_time_s": 120.0, "test_eval_s": 0.0, "test_accuracy": 0.8}]}
    label, minutes, errors = report.time_to_accuracy_points(timed, TIMED["time_to_accuracy"])
    assert label == "test error" and minutes == pytest.approx([0.9, 2.9]) and errors == pytest.approx([50.0, 20.0])
    validated = {"history": [{"epoch": 1, "epoch_time_s": 30.0, "val_accuracy": 0.75}, {"epoch": 2, "accuracy": 0.9}]}
    assert report.time_to_accuracy_points(validated, TIMED["time_to_accuracy"]) == ("val error", [0.5], [25.0])


def test_time_to_accuracy_gives_each_seed_its_colour_and_each_preset_its_line():
    """Five seeds of one preset are five colours (they were one colour in four line styles, seeds 0 and 4
    drawn alike); a seed keeps its colour in another preset, which has its own line and marker."""
    fast = [report.time_style(1, seed) for seed in range(5)]
    assert len({s["color"] for s in fast}) == 5 and len({(s["ls"], s["marker"]) for s in fast}) == 1
    paper = report.time_style(0, 2)
    assert paper["color"] == fast[2]["color"] and (paper["ls"], paper["marker"]) != (fast[2]["ls"], fast[2]["marker"])


def test_time_to_accuracy_figure_holds_the_listed_presets_runs_only(repo):
    _, res, papers, readme = repo
    (papers / "toy" / "paper.json").write_text(json.dumps(TIMED))
    _write_timed(res, "paper", 0, [{"epoch": 1, "epoch_time_s": 60.0, "val_accuracy": 0.6}])
    _write_timed(res, "fast", 0, [{"epoch": 1, "epoch_time_s": 30.0, "test_eval_s": 3.0, "test_accuracy": 0.7}])
    _write_timed(res, "quick", 0, [{"epoch": 1, "epoch_time_s": 10.0, "val_accuracy": 0.5}])
    _write_timed(res, "paper", 1, [{"epoch": 1, "val_accuracy": 0.6}])  # no epoch times: not drawn
    drawn = report._time_groups(results.load_all(res, "toy"), TIMED)
    assert list(drawn) == ["v1"]
    assert sorted((r["preset"], r["seed"]) for r in drawn["v1"]) == [("fast", 0), ("paper", 0)]
    text = report.render(res, papers, readme, res, draw=True)[papers / "toy" / "REPORT.md"]
    assert "## Time to accuracy" in text and "less `test_eval_s`" in text
    assert "![v1 time to accuracy](../../results/toy/figures/v1_time_to_accuracy.png)" in text
    assert (res / "toy" / "figures" / "v1_time_to_accuracy.png").exists()
    report.write_all(res, papers, readme)
    assert report.check(res, papers, readme) == []


def test_missing_gives_the_command_and_cost_of_every_run_a_row_lacks(repo):
    """A row with no run at its preset gives what another model of the paper took at that preset (a VAE's
    other latent size, a shallower ResNet): it gave only the same model at another preset, a 8-minute quick run
    beside a paper recipe that takes 489 (the VAE on MNIST), or nothing at all (ResNet-32)."""
    _, res, papers, _ = repo
    (papers / "toy" / "paper.json").write_text(json.dumps({**META, "variant_fields": ["width"],
                                                           "variants": {"v2": {"width": 8}}}))
    _write(res, 0, 0.10, wall=600)
    _write(res, 1, 0.12, wall=1200)
    _write(res, 0, 0.30, preset="quick", wall=60)
    _write(res, 1, 0.30, preset="quick-custom", changes={"lr": 1}, wall=60)
    _write(res, 0, 0.30, preset="smoke", wall=1)
    lines = report.missing(res, papers)
    first = results.load_all(res)[0]
    machine = f"{first['device']['name']} / {report._backend(first)}"  # machine and backend: both set a speed
    assert lines == [
        f"python papers/toy/train.py --seed=2  # toy v1 paper: 15 min per run (mean of 2 on {machine})",
        *[f"python papers/toy/train.py --preset=quick --seed={s}  # toy v1 quick: 1 min per run (mean of 1 on "
          f"{machine})" for s in (1, 2)],
        *[f"python papers/toy/train.py --width=8 --seed={s}  # toy v2 paper: not measured; at this preset v1 took "
          f"15 min per run (mean of 2 on {machine})" for s in (0, 1, 2)]]
    # Another model of the paper on other data (a string, not a size) tells nothing of this one's cost.
    (papers / "toy" / "paper.json").write_text(json.dumps({**META, "variant_fields": ["width", "dataset"],
                                                           "variants": {"v2": {"width": 8, "dataset": "other"}}}))
    assert report.missing(res, papers)[-1] == ("python papers/toy/train.py --width=8 --dataset=other --seed=2  "
                                               "# toy v2 paper: not measured on any machine yet")


def test_missing_gives_each_machine_its_own_time_never_a_mean_over_machines(repo):
    """Two runs on one machine and one on another twice as slow: a cost of 27 min 'on A, B' is a time that
    neither machine takes (the semi-supervised GAN's CIFAR-10 quick runs: 114 min on an AMD EPYC, 53 and
    55 on an Intel Xeon, were quoted as 74)."""
    _, res, papers, _ = repo
    (papers / "toy" / "paper.json").write_text(json.dumps({**META, "variant_fields": ["width"],
                                                           "variants": {"v2": {"width": 8}}}))
    _write(res, 0, 0.10, wall=600, device="CPU: A (2 cores)")
    _write(res, 1, 0.12, wall=1200, device="CPU: A (2 cores)")
    first = results.load_all(res)[0]
    backend = report._backend(first)
    _write(res, 2, 0.14, wall=3000, device="CPU: B (2 cores)")
    lines = [line for line in report.missing(res, papers) if "toy v2 paper" in line]
    assert lines[0].endswith(f"# toy v2 paper: not measured; at this preset v1 took 15 min per run (mean of 2 on "
                             f"CPU: A (2 cores) / {backend}), 50 min per run (mean of 1 on CPU: B (2 cores) / "
                             f"{backend})")
    # The report's wall-time column: the same, one mean per machine.
    text = report.render(res, papers, res.parent / "README.md", res, draw=False)[papers / "toy" / "REPORT.md"]
    assert "| 3 | 15 min on CPU: A (2 cores), 50 min on CPU: B (2 cores) |" in text


def test_summary_csv_has_a_row_per_model_preset_and_metric_with_its_records(repo):
    import io

    import pandas as pd

    _, res, papers, readme = repo
    files = [_write(res, seed, err).name for seed, err in ((0, 0.10), (1, 0.12), (2, 0.14))]
    _write(res, 0, 0.3, preset="smoke")
    out = report.render(res, papers, readme, res, draw=False)
    table = pd.read_csv(io.StringIO(out[res / "summary.csv"]))
    assert list(table.columns) == list(report.SUMMARY_COLUMNS)
    row = table[(table.model == "v1") & (table.preset == "paper")].iloc[0]
    assert (row["recipe"], row["metric"], row["n"], row["paper_value"]) == ("paper's recipe", "error (%)", 3, 10.0)
    assert row["mean"] == pytest.approx(12.0) and row["std"] == pytest.approx(2.0)
    assert row["records"].split(";") == sorted(files)
    assert table[table.model == "v2"].iloc[0]["n"] == 0 and "smoke" not in set(table.preset)
    report.write_all(res, papers, readme)
    assert report.check(res, papers, readme) == []
    (res / "summary.csv").write_text("stale\n")
    assert str(res / "summary.csv") in report.check(res, papers, readme)


def test_a_curve_figure_counts_what_it_shows_and_its_name_needs_no_quoting():
    runs = [{"seed": 0, "config": {"fold": f, "seed": 0}, "config_hash": f"h{f}"} for f in (0, 1, 2)]
    assert report._runs_phrase(runs, {"repeat_field": "fold"}) == "3 folds (0, 1, 2) of seed 0"
    seeds = [{"seed": s, "config": {"seed": s}, "config_hash": "same" if s else "other"} for s in (0, 1, 1)]
    assert report._runs_phrase(seeds, {}) == "2 seeds (0, 1), 1 repeated"
    assert report._curve_file("v1", "quick-custom (lr=0.1, steps=3)") == "v1_quick-custom_lr_0.1_steps_3.png"


def test_a_curve_figure_s_legend_names_only_the_curves_its_runs_log():
    """ResNet's fast runs hold out no validation images: their figure's legend said "val error" for a curve
    that none of them draws."""
    meta = {"curves": [["accuracy", "train error", True], ["val_accuracy", "val error", True],
                       ["test_accuracy", "test error", True]]}
    fast = [{"history": [{"epoch": 1, "accuracy": 0.5, "test_accuracy": 0.4, "val_accuracy": None}]}] * 2
    assert report.curves_logged(fast, meta) == [0, 2]
    paper = [{"history": [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.6}]}]
    assert report.curves_logged(paper, meta) == [0, 1]


def test_the_readme_headline_has_one_row_per_model_at_its_most_comparable_preset(repo):
    _, res, papers, readme = repo
    for seed, err in ((0, 0.10), (1, 0.12)):
        _write(res, seed, err)  # v1: the paper's recipe ran
    _write(res, 0, 0.2, preset="quick")
    r = record(preset="long", final={"error": 0.07, "iterations": 900}, history=[{"epoch": 1}])
    r.update(variant="v2", config_hash="long", recipe_changes={})
    results.write(r, res)
    r = record(preset="quick", final={"error": 0.3, "iterations": 100}, history=[{"epoch": 1}])
    r.update(variant="v2", config_hash="quick", recipe_changes={})
    results.write(r, res)
    table = report.render(res, papers, readme, res, draw=False)[readme]
    rows = [line for line in table.splitlines() if line.startswith("| [toy]")]
    assert rows == ["| [toy](papers/toy/REPORT.md) | v1 | error (%) | paper | 11.00 ± 1.41 (n=2) | 10.0 | +1.00 | "
                    "comparable |",
                    "| [toy](papers/toy/REPORT.md) | v2 | error (%) | long | 7.00 (n=1) | 5.0 | +2.00 | shortened |"]


def test_extra_metric_tables_split_the_other_measures_into_one_table_per_group(repo):
    _, res, papers, readme = repo
    meta = {**GROUPED, "extra_metrics": [["gap_a", "a", 1], ["gap_b", "b", 1], ["k", "k", None]],
            "extra_metric_tables": [["Gaps", ["gap_b", "gap_a"]]]}
    (papers / "toy" / "paper.json").write_text(json.dumps(meta))
    _write_grouped(res, "v1", 0, [-120, -110], 1.0)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    others = text[text.index("### The other measures"):text.index("### What the rows cost")]
    assert "**Gaps**\n\n| model | preset | b | a |\n" in others  # the group's columns, in its order
    assert "**Other measures**\n\n| model | preset | k |\n" in others  # what no group names, last
    assert "| v1 | quick (not the paper's recipe) | 0.0 | 1.0 |" in others


def test_every_run_links_its_results_file_from_the_report(repo):
    _, res, papers, readme = repo
    path = _write(res, 0, 0.1)
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert f"| [{path.name}](../../results/toy/{path.name}) |" in text


def test_a_results_folder_with_no_records_is_refused_before_any_report_is_written(tmp_path, monkeypatch, capsys):
    """`python -m common.report --results_dir=<a typo>` rewrote the README table and every REPORT.md as if
    nothing had ever run."""
    written = []
    monkeypatch.setattr(report, "write_all", lambda *a, **k: written.append(a) or [])
    for args in ([], ["--check"], ["--missing"]):
        with pytest.raises(SystemExit) as stop:
            report.main([f"--results_dir={tmp_path / 'reslts'}", *args])
        assert stop.value.code == 2 and "holds no results records" in capsys.readouterr().err
    assert written == []


def test_the_hardware_names_xla_flags_and_the_cores_a_session_was_pinned_to(repo):
    _, res, papers, readme = repo
    path = _write(res, 0, 0.1)
    body = json.loads(path.read_text())
    body["device"]["backend"] = "jax"
    single = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    body["sessions"] = [{"commit": "a" * 40, "dirty": False, "environment": single,
                         "cores": {"usable": 2, "machine": 2}},
                        {"commit": "a" * 40, "dirty": False, "environment": single,
                         "cores": {"usable": 1, "machine": 2}}]  # resumed under taskset -c 0
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert " / jax (XLA_FLAGS --xla_cpu_multi_thread_eigen=false, cores all/1 of 2) |" in text
    body["sessions"][0]["cores"]["usable"] = 1
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert " / jax (XLA_FLAGS --xla_cpu_multi_thread_eigen=false, cores 1 of 2) |" in text
    del body["sessions"][0]["cores"]  # a session from before the cores were recorded
    path.write_text(json.dumps(body))
    text = report.render(res, papers, readme, res, draw=False)[papers / "toy" / "REPORT.md"]
    assert " / jax (XLA_FLAGS --xla_cpu_multi_thread_eigen=false, cores ?/1 of 2) |" in text
