"""Generate every paper's REPORT.md, its learning-curve plots and the README results table from results/.

    python -m common.report            # regenerate
    python -m common.report --check    # exit 1 if a REPORT.md or the README table is not what results/ gives
    python -m common.report --missing  # the command of every run a table row still lacks, with its cost

Nothing here is typed by hand: each number comes from a results JSON (common.lifecycle.results); the paper's
own numbers come from papers/<name>/paper.json, with their citation. `PAPER_JSON` below lists every
key a paper.json may have and what it means; an unknown key is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from common import relay
from common.lifecycle import repro
from common.lifecycle import results as results_lib
from common.lifecycle.config import PLUMBING_PRESETS, command_config, command_run_dir

REPO = Path(__file__).resolve().parent.parent

# Every key of papers/<name>/paper.json, as this module reads it.
PAPER_JSON = {
    "title": "the paper's title (the REPORT.md heading)",
    "citation": "authors, title, venue, year",
    "source": "where in the paper its numbers are (table, figure), or why it has none",
    "metric": "the `final` key of the headline number",
    "metric_label": "how that number is named in tables",
    "metric_short": "a short name for it in the README's headline table (default: metric_label)",
    "scale": "factor applied to the metric before it is shown (100 for a fraction shown as %)",
    "digits": "decimals shown (default 2)",
    "lower_is_better": "whether a smaller metric is better (documentation for readers of the JSON)",
    "repeats": "what the ± is over, when not seeds (e.g. 'folds')",
    "paper_preset": "the preset that is the paper's recipe (default 'paper')",
    "recipe_ours": "true, or a list of variants: the paper preset's recipe is this repository's for the paper's "
                   "protocol (the paper, or the authors' code, does not give all of it: README, Deviations), so its "
                   "rows say so instead of 'paper's recipe'",
    "paper_values": "{variant: the paper's number}, shown beside ours",
    "paper_rows": "variants that always get a paper-recipe row, 'not run yet' until one ran (default: "
                  "the keys of paper_values)",
    "no_data": "{variant: why}: the paper's configurations whose data this repository cannot reach; each gets "
               "a paper-recipe row saying 'no data' (until one ran) and its reason under the summary",
    "variant_order": "the order of variants in tables and figures",
    "extra_metrics": "[[final key or 'config.<field>', column label, digits or null for a setting, "
                     "optional scale], ...]: more per-run columns",
    "extra_metric_tables": "[[heading, [final keys of extra_metrics]], ...]: the summary's other measures as "
                           "one table per group (those no group names come last, under 'Other measures'), "
                           "for papers with more of them than one table can show",
    "score_network_metrics": "the `final` keys (headline or extra) made with a score network: a summary cell "
                             "that pools runs scored with different network files (by their SHA-256) is marked",
    "throughput_key": "the `final` key of the run's images/s (default 'train_images_per_s')",
    "throughput_label": "its column label (default 'train images/s')",
    "references": "[{what, value, source}]: other published numbers shown under the summary",
    "claims": "[{claim, measure, holds_if: ['>' or '<', threshold], and one of difference: [a, b] (final "
              "keys), gain: history key with from_fraction, correlation: [history key, history key], "
              "between: [variant, variant] with key (a final key; runs of one preset paired by seed) and "
              "optional fold_key (a final list of per-fold values: paired by seed and fold); optional interval: "
              "what variation the interval covers; "
              "optional scale; margin: the smallest effect that counts, in the measure's units}]: the "
              "paper's claims, each row judged by a stated test (supports, contradicts, inconclusive; a row "
              "of one run is not judged)",
    "curves": "[[history key, label, is_accuracy], ...]: the learning curves drawn per run",
    "curve_group": "a config field whose value groups runs into one figure (default: one per variant)",
    "curve_x": "the history key on the x axis (default 'epoch')",
    "curve_xlabel": "x axis label", "curve_ylabel": "y axis label",
    "curve_xscale": "'linear' or 'log'",
    "curve_ylim": "{group: [low, high]} y limits per figure",
    "variant_fields": "the config fields that choose a variant (e.g. ['depth']): `--missing` writes them into the "
                      "command of a row, taking their values from a record of that variant",
    "variants": "{variant: {field: value}} for variants that have no record yet (a test checks that each makes "
                "its variant)",
    "repeat_field": "the config field that tells a row's repeats apart (default 'seed'; e.g. 'data_seed', 'fold')",
    "repeat_first": "its first value (default 0): `--missing` asks for repeats first, first + 1, first + 2",
    "time_to_accuracy": "{presets: [preset labels], curves: [[history key, label], ...] (each run draws the "
                        "first it logs), exclude: [history keys of seconds inside an epoch that are not "
                        "training], exclude_label: what those are, in words (the time axis's label), "
                        "ylim: [low, high]}: one figure per variant of error against training "
                        "time, the listed presets' runs side by side",
}
# The preset slot of a time-to-accuracy figure in the figure lists (it holds several presets).
TIME_FIGURE = "time to accuracy"
# A run's mark in the summary when its code is not exactly a commit (see `_code_note`).
MODIFIED_MARK = "†"
# A row's mark when its runs ran different code of the paper (`_mixed_code`).
MIXED_CODE_MARK = "§"
# A summary cell's mark when it pools runs scored with different score-network files.
NETWORKS_MARK = "‡"
README_START, README_END = "<!-- results:start -->", "<!-- results:end -->"
GENERATED = "<!-- Generated by `python -m common.report` from results/; do not edit. -->"


def paper_meta(paper: str, papers_dir: Path = REPO / "papers") -> dict:
    path = papers_dir / paper / "paper.json"
    with open(path) as f:
        meta = json.load(f)
    unknown = sorted(set(meta) - set(PAPER_JSON))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; the keys are documented in "
                         f"common/report.py, PAPER_JSON")
    return {**meta, "_folder": f"papers/{paper}"}


def papers(papers_dir: Path = REPO / "papers") -> list[str]:
    return sorted(p.parent.name for p in papers_dir.glob("*/paper.json"))


def _extras(meta: dict) -> list[tuple[str, str, int]]:
    """Further per-run numbers a paper reports beside its main metric: (final key, label, digits);
    digits None: a setting, listed rather than averaged. An optional fourth element scales the value
    (100 for a fraction shown as a percentage)."""
    return [tuple(e[:3]) for e in meta.get("extra_metrics", [])]


def _extra_tables(meta: dict) -> list[tuple[str, dict[str, str]]]:
    """The extra columns as (heading, {key: label}) per table: the groups of `extra_metric_tables`, then
    the columns no group names; one table without a heading when the paper groups none."""
    labels = {key: label for key, label, _ in _extras(meta)}
    groups = meta.get("extra_metric_tables", [])
    named = {key for _, keys in groups for key in keys}
    tables = [(heading, {key: labels[key] for key in keys}) for heading, keys in groups]
    rest = {key: label for key, label in labels.items() if key not in named}
    if rest:
        tables.append(("Other measures" if groups else "", rest))
    return tables


def _extra_value(record: dict, entry) -> object:
    """A run's value for an extra column: a key of its `final` results, or `config.<field>`."""
    key = entry[0]
    value = record["config"].get(key[7:]) if key.startswith("config.") else record["final"].get(key)
    scale = entry[3] if len(entry) > 3 else 1
    return value * scale if isinstance(value, int | float) and not isinstance(value, bool) else value


def _runs_frame(records: list[dict], meta: dict) -> pd.DataFrame:
    rows = []
    extras = meta.get("extra_metrics", [])
    for r in records:
        if r.get("kind", "training") != "training":
            continue
        value = r["final"].get(meta["metric"])
        rows.append({
            **{e[0]: _extra_value(r, e) for e in extras},
            "variant": r["variant"], "preset": _preset(r), "seed": r["seed"], "status": r["status"],
            "value": None if value is None else value * meta.get("scale", 1),
            # a run whose work is not Keras epochs (a cross-validation's folds) has no history: no epoch count
            "iterations": r["final"].get("iterations"), "epochs": len(r["history"]) or None,
            "device": _device(r), "backend": _backend(r),
            "wall_min": r["wall_time_s"] / 60, "sessions": _session_count(r),
            "images_per_s": throughput(r, meta.get("throughput_key", "train_images_per_s")),
            "update_over_step": r["final"].get("update_over_step"),
            "commit": _commits(r) + (f", re-evaluated at {_commit(r['revision']['git'])}"
                                     if r.get("revision") else ""),
            "modified": bool(_code_note(r)), "config_hash": r.get("config_hash"),
            "commits": tuple(g["commit"] for g in _sessions(r) or [r["git"]] if g.get("commit")),
            # The score network a run's sample scores were made with, by the start of its file's SHA-256.
            "score_network_file": (r["final"].get("score_network_sha256") or "")[:8] or None,
            # When it finished; a name clash in one second got a numeric suffix, which comes later.
            "order": (r.get("finished", ""), int(m.group(1)) if (m := re.search(r"-(\d+)\.json$", r["_path"])) else 0),
            "file": Path(r["_path"]).name,
        })
    columns = ["variant", "preset", "seed", "status", "value", "iterations", "epochs", "device", "backend",
               "wall_min", "sessions", "images_per_s", "update_over_step", "commit", "modified", "config_hash",
               "commits", "score_network_file", "order", "file",
               *(e[0] for e in extras)]
    return pd.DataFrame(rows, columns=columns)


def _session_count(record: dict) -> int:
    """How many processes the run took to finish: 1, or one more for every resume (a relayed run's sessions
    span developer sessions and machines). Records written before sessions were itemised give a count."""
    sessions = record.get("sessions")
    return len(sessions) if isinstance(sessions, list) else int(sessions or 1)


def _commit(git: dict) -> str:
    return (git.get("commit") or "unknown")[:7] + ("+dirty" if git.get("dirty") else "")


def _sessions(record: dict) -> list[dict]:
    """The record's itemised sessions (records written before they were itemised have only a count)."""
    sessions = record.get("sessions")
    return [s for s in sessions if "commit" in s] if isinstance(sessions, list) else []


def _commits(record: dict) -> str:
    """The commit(s) a run's code came from: one, or each session's in order when they differ."""
    names = []
    for git in _sessions(record) or [record["git"]]:
        if not names or names[-1] != _commit(git):
            names.append(_commit(git))
    return " → ".join(names) + (" (code changed)" if _code_changes(record) else "")


def _code_changes(record: dict) -> list[str] | None:
    """The files changed between the run's sessions that can change what it computes (records written
    before `repro.changed_files` left documentation out listed README and REPORT changes too); None when
    git could not tell or the record predates the list."""
    changed = record.get("code_changed_between_sessions")
    return None if changed is None else [f for f in changed if repro.is_code(f)]


def _code_note(record: dict) -> str:
    """Why a run's code is not exactly one commit, or '' when it is: a dirty tree in any session, or
    sessions whose commits differ in the paper's folder or common/ (or git could not tell)."""
    gits = _sessions(record) or [record["git"]]
    if any(g.get("dirty") for g in gits):
        return "made from a modified tree"
    if len({g.get("commit") for g in gits}) > 1 and _code_changes(record) != []:
        return "resumed under changed code"
    return ""


def throughput(record: dict, key: str) -> float | None:
    """The run's training throughput over all its sessions: the record's own for records with itemised
    sessions; for older ones, whose `final` value covered only the last session, the median of the
    per-epoch `train_images_per_s` in the history, leaving out the first epoch (it compiles)."""
    if _sessions(record):
        return record["final"].get(key)
    rates = [h["train_images_per_s"] for h in record["history"] if h.get("train_images_per_s") is not None]
    if len(rates) > 1:
        return float(pd.Series(rates[1:]).median())
    return rates[0] if rates else record["final"].get(key)


def _preset(record: dict) -> str:
    """The run's preset label and, for a custom run, the recipe fields it changed, so that custom
    runs with different changes are separate rows and never averaged together."""
    changes = record.get("recipe_changes") or {}
    if not changes:
        return record["preset"]
    shown = ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in sorted(changes.items()))
    return f"{record['preset']} ({shown})"


def _device(record: dict) -> str:
    """The device's name, with the number of devices and hosts of a data-parallel run (common.lifecycle.distribute);
    a run whose sessions ran on several machines (relayed: common.relay) names each, in order."""
    placed = record.get("distribution") or {}
    name = record["device"]["name"]
    machines = [s["machine"] for s in _sessions(record) if s.get("machine")]
    if len(set(machines)) > 1:
        name = " → ".join(dict.fromkeys(machines))
    if placed.get("replicas", 1) > 1:
        name += f" (data parallel: {placed['replicas']} devices" + (
            f" on {placed['hosts']} hosts)" if placed.get("hosts", 1) > 1 else ")")
    return name


def _backend(record: dict) -> str:
    """The backend, with oneDNN and any thread pool sizes its sessions were given (`_threads`)."""
    backend = record["device"]["backend"]
    if backend == "tensorflow" and record["versions"].get("tf_onednn") == "1":
        backend = "tensorflow + oneDNN"
    threads = _threads(record)
    return f"{backend} ({threads})" if threads else backend


THREAD_POOLS = (("TF_NUM_INTRAOP_THREADS", "intra-op"), ("TF_NUM_INTEROP_THREADS", "inter-op"),
                ("OMP_NUM_THREADS", "OpenMP"))


def _threads(record: dict) -> str:
    """The thread pool sizes set by environment variable, XLA's flags and the cores a session was pinned to,
    over the sessions in order ("intra-op threads default/1" for a run resumed with TF_NUM_INTRAOP_THREADS=1,
    "cores all/1 of 2" for one resumed under `taskset -c 0`, "?" for a session from before the cores were
    recorded); empty when none was set or the record is older than `repro.thread_environment`."""
    sessions = _sessions(record)
    environments = [s["environment"] for s in sessions if "environment" in s]
    if not environments and "environment" in record["device"]:
        environments = [record["device"]["environment"]]
    shown = []
    for variable, pool in THREAD_POOLS:
        values = [e.get(variable) for e in environments]
        if any(values):
            shown.append(f"{pool} threads " + "/".join(dict.fromkeys(v or "default" for v in values)))
    flags = [e.get("XLA_FLAGS") for e in environments]
    if any(flags):
        shown.append("XLA_FLAGS " + "/".join(dict.fromkeys(v or "none" for v in flags)))
    cores = [s.get("cores") for s in sessions]  # None: a session from before they were recorded
    if any(c and c["usable"] < c["machine"] for c in cores):
        used = ("?" if not c else str(c["usable"]) if c["usable"] < c["machine"] else "all" for c in cores)
        shown.append("cores " + "/".join(dict.fromkeys(used)) + f" of {max(c['machine'] for c in cores if c)}")
    return ", ".join(shown)


def _order(frame: pd.DataFrame, meta: dict) -> list[tuple[str, str]]:
    order = {v: i for i, v in enumerate(meta.get("variant_order", []))}
    presets = {meta.get("paper_preset", "paper"): 0, "quick": 1}
    keys = {(v, p) for v, p in zip(frame["variant"], frame["preset"], strict=True)}
    # The paper's own configurations always get a paper-recipe row, saying "not run yet" until one ran.
    keys |= {(v, meta.get("paper_preset", "paper")) for v in meta.get("paper_rows", meta.get("paper_values", {}))}
    keys |= {(v, meta.get("paper_preset", "paper")) for v in meta.get("no_data", {})}
    return sorted(keys, key=lambda k: (order.get(k[0], 99), k[0], presets.get(k[1], 9), k[1]))


def _mean_std(values: pd.Series, digits: int = 2) -> str:
    values = values.dropna()
    if len(values) == 0:
        return "–"
    if len(values) == 1 or values.nunique() == 1:  # one run, or one value shared by all (e.g. one score network)
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def _show_value(v) -> str:
    """A listed value as people write it: a whole float (a count that pandas widened, 3.0) as 3."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _join(values) -> str:
    return ", ".join(sorted({_show_value(v) for v in values if v is not None and str(v) not in ("nan", "<NA>")})) or "–"


def summary_rows(frame: pd.DataFrame, meta: dict) -> list[dict]:
    """One row per (variant, preset): mean ± std over completed seeds, beside the paper's number."""
    rows = []
    for variant, preset in _order(frame, meta):
        group = frame[(frame["variant"] == variant) & (frame["preset"] == preset)]
        completed = group[group["status"] == "completed"]
        # One configuration (seed included) counts once: a repeat of a finished run is not another seed.
        done = completed.sort_values("order").drop_duplicates("config_hash", keep="last")
        repeats = len(completed) - len(done)
        paper_value = meta.get("paper_values", {}).get(variant)
        mark = (MODIFIED_MARK if done["modified"].any() else "") + (MIXED_CODE_MARK if _mixed_code(done, meta) else "")
        # Sample scores of different score networks are different measures: averaging them is marked.
        mixed = set(meta.get("score_network_metrics", ())) if done["score_network_file"].nunique() > 1 else set()
        row = {"variant": variant, "preset": preset + _recipe_label(meta, variant, preset),
               "ours": (_mean_std(done["value"], meta.get("digits", 2)) + mark
                        + (NETWORKS_MARK if meta["metric"] in mixed else "") if len(done)
                        else "no data" if variant in meta.get("no_data", {}) else "not run yet"),
               **{key: ("–" if not len(done) else _join(done[key]) if digits is None
                        else _mean_std(done[key].astype(float), digits) + (NETWORKS_MARK if key in mixed else ""))
                  for key, _, digits in _extras(meta)},
               "paper": f"{paper_value}" if paper_value is not None else "–",
               "n": f"{len(done)}" + (f" (+{repeats} repeated, latest used)" if repeats else "")
                    + (f" (+{len(group) - len(completed)} failed)" if len(group) > len(completed) else ""),
               "iterations": _join(done["iterations"].astype("Int64")) if len(done) else "–",
               "epochs": _join(done["epochs"]) if len(done) else "–",
               "hardware": _join(done["device"] + " / " + done["backend"]) if len(done) else "–",
               "took": (took := [(device, _duration(g["wall_min"].mean()), len(g))
                                 for device, g in done.groupby("device", sort=True)]),
               # one mean per machine where the runs ran on several (they differ up to 2x)
               "wall": ("–" if not took else took[0][1] if len(took) == 1
                        else ", ".join(f"{wall} on {device}" for device, wall, _ in took))}
        rows.append(row)
    return rows


OUR_RECIPE = " (our recipe for the paper's protocol)"


def _recipe_label(meta: dict, variant: str, preset: str) -> str:
    """What a row's preset is: the paper's recipe, this repository's recipe for the paper's protocol
    (paper.json's `recipe_ours`), or not the paper's recipe (a shortened or changed one)."""
    if preset != meta.get("paper_preset", "paper"):
        return " (not the paper's recipe)"
    ours = meta.get("recipe_ours", False)
    return OUR_RECIPE if ours is True or (isinstance(ours, list) and variant in ours) else " (paper's recipe)"


def preset_rows(paper: str, results_dir: Path = REPO / "results") -> dict[tuple[str, str], dict]:
    """The summary rows of a paper's records by (variant, preset): what --help and a run's banner quote."""
    meta = paper_meta(paper)
    rows = summary_rows(_runs_frame(results_lib.load_all(results_dir, paper), meta), meta)
    return {(r["variant"], r["preset"].split(" (")[0]): {**r, "metric": meta["metric_label"],
                                                         "recipe": r["preset"].split(" (", 1)[1].rstrip(")")}
            for r in rows}


def _duration(minutes: float) -> str:
    """Whole minutes, or seconds for a run under one minute, which whole minutes would show as zero."""
    return f"{minutes:.0f} min" if minutes >= 1 else f"{60 * minutes:.0f} s"


def _table(rows: list[dict], columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[k]) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


def _curve_groups(records: list[dict], meta: dict) -> dict[tuple[str, str], list[dict]]:
    """The runs drawn together in one figure: per (variant, preset), or, when paper.json names a
    `curve_group` config field (e.g. the dataset), per (value of that field, preset)."""
    group_field = meta.get("curve_group")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r.get("kind", "training") == "training" and r["status"] == "completed" and r["history"]:
            name = str(r["config"][group_field]) if group_field else r["variant"]
            groups.setdefault((name, _preset(r)), []).append(r)
    return dict(sorted(groups.items()))


def _curve_file(name: str, preset: str) -> str:
    """The figure's file name: the preset label (with a custom run's changes) made safe for a path and a shell
    (letters, digits, '.', '_' and '-')."""
    return f"{name}_{re.sub(r'[^A-Za-z0-9._-]+', '_', preset).strip('_')}.png"


def _runs_phrase(runs: list[dict], meta: dict) -> str:
    """What a figure holds, counted: '3 seeds (0, 1, 2)', '3 folds (0, 1, 2) of seed 0', '2 draws ...', with the
    repeats of a configuration said."""
    field = meta.get("repeat_field", "seed")
    seeds = sorted({r["seed"] for r in runs})
    values = sorted({r["config"].get(field) for r in runs}, key=str)
    noun = {"seed": "seed", "fold": "fold", "data_seed": "label draw"}.get(field, field)
    phrase = f"{len(values)} {noun}{'s' if len(values) != 1 else ''} ({', '.join(map(str, values))})"
    if field != "seed":
        phrase += f" of seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"
    repeats = len(runs) - len({r.get("config_hash") for r in runs})
    return phrase + (f", {repeats} repeated" if repeats > 0 else "")


def curves_logged(runs: list[dict], meta: dict) -> list[int]:
    """The indices of paper.json's `curves` that at least one of `runs` logs (against the figure's x axis):
    the ones a figure's legend names."""
    x_key = meta.get("curve_x", "epoch")
    return [i for i, (key, _, _) in enumerate(meta["curves"])
            if any(h.get(key) is not None and h.get(x_key) is not None for r in runs for h in r["history"])]


def plot_curves(frame_records: list[dict], meta: dict, out: Path) -> list[tuple[str, str, Path]]:
    """One PNG per curve group: the history keys in paper.json's `curves` against `curve_x` (default:
    epoch), each run a thin line; accuracies are drawn as error (%); losses (keys ending in 'loss') on their
    own axis when the figure has other curves. Without a `curve_group`, one colour per seed (or repeat) and
    one line style per curve; with one, one colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    grouped = bool(meta.get("curve_group"))
    x_key = meta.get("curve_x", "epoch")
    order = {v: i for i, v in enumerate(meta.get("variant_order", []))}
    field = meta.get("repeat_field", "seed")
    written = []
    for (name, preset), runs in _curve_groups(frame_records, meta).items():
        fig, ax = plt.subplots(figsize=(7, 5.2) if grouped else (6.4, 4.8), dpi=100)
        losses = [c for c in meta["curves"] if c[0].endswith("loss")]
        loss_ax = ax.twinx() if losses and len(losses) < len(meta["curves"]) else None
        variants = sorted({r["variant"] for r in runs}, key=lambda v: (order.get(v, 99), v))
        for v_index, variant in enumerate(variants):
            repeats = sorted((r for r in runs if r["variant"] == variant),
                             key=lambda r: (str(r["config"].get(field)), r["seed"]))
            for c_index, (key, label, is_accuracy) in enumerate(meta["curves"]):
                target = loss_ax if loss_ax is not None and key.endswith("loss") else ax
                for i, r in enumerate(repeats):
                    points = [(h.get(x_key), h[key]) for h in r["history"]
                              if h.get(key) is not None and h.get(x_key) is not None]
                    if not points:  # a curve this run does not log (e.g. only one preset measures it)
                        continue
                    xs = [x for x, _ in points]
                    vals = [100 * (1 - v) if is_accuracy else v for _, v in points]
                    color = f"C{v_index}" if grouped else f"C{i}"
                    legend = f"{variant} {label}" if grouped and i == 0 else None
                    target.plot(xs, vals, color=color, ls=("-", "--", ":")[c_index % 3], lw=1, alpha=0.8,
                                label=legend)
        ax.set_xscale(meta.get("curve_xscale", "linear"))
        ax.set_xlabel(meta.get("curve_xlabel", "epoch"))
        if x_key == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(meta.get("curve_ylabel", "error (%)") if loss_ax is not None or not losses else "loss")
        if loss_ax is not None:
            loss_ax.set_ylabel("loss")
        if meta.get("curve_ylim"):
            ax.set_ylim(*meta["curve_ylim"].get(name, (None, None)))
        counted = _runs_phrase(runs, meta)
        counted = f"{len(runs)} runs of {len(variants)} models, {counted}" if grouped else counted
        ax.set_title(f"{name}, preset {preset}: {counted}",
                     fontsize=9)
        ax.grid(alpha=0.3)
        if grouped:
            handles, labels = ax.get_legend_handles_labels()
        else:  # one entry per curve (its line style) and one per seed or repeat (its colour)
            from matplotlib.lines import Line2D

            logged = curves_logged(runs, meta)
            handles = [Line2D([], [], color="0.3", ls=("-", "--", ":")[i % 3]) for i in logged]
            labels = [meta["curves"][i][1] for i in logged]
            shown = sorted({str(r["config"].get(field)) for r in runs})
            handles += [Line2D([], [], color=f"C{i}") for i in range(len(shown))]
            labels += [f"{field.replace('_', ' ')} {value}" for value in shown]
        if handles:
            ax.legend(handles, labels, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      ncol=3 if len(labels) > 4 else 2, frameon=False)
        out.mkdir(parents=True, exist_ok=True)
        path = out / _curve_file(name, preset)
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        written.append((name, preset, path))
    return written


def _time_groups(records: list[dict], meta: dict) -> dict[str, list[dict]]:
    """The runs of each variant drawn in its time-to-accuracy figure: completed training runs of the
    presets paper.json lists whose history times each epoch and logs one of the figure's curves."""
    spec = meta.get("time_to_accuracy")
    if not spec:
        return {}
    keys = [key for key, _ in spec["curves"]]
    groups: dict[str, list[dict]] = {}
    for r in records:
        if (r.get("kind", "training") == "training" and r["status"] == "completed" and _preset(r) in spec["presets"]
                and any(h.get("epoch_time_s") is not None and any(h.get(k) is not None for k in keys)
                        for h in r["history"])):
            groups.setdefault(r["variant"], []).append(r)
    order = {v: i for i, v in enumerate(meta.get("variant_order", []))}
    return dict(sorted(groups.items(), key=lambda item: (order.get(item[0], 99), item[0])))


def time_to_accuracy_points(record: dict, spec: dict) -> tuple[str, list[float], list[float]]:
    """(curve label, minutes of training so far, error %) after each epoch of one run: the first of the
    spec's curves the run logs, against the cumulative epoch times less the spec's `exclude` seconds
    (evaluations that are not training, such as a test pass after every epoch)."""
    key, label = next((k, lab) for k, lab in spec["curves"] if any(h.get(k) is not None for h in record["history"]))
    minutes, errors, elapsed = [], [], 0.0
    for h in record["history"]:
        if h.get("epoch_time_s") is None:
            continue
        elapsed += h["epoch_time_s"] - sum(h.get(k) or 0.0 for k in spec.get("exclude", []))
        if h.get(key) is not None:
            minutes.append(elapsed / 60)
            errors.append(100 * (1 - h[key]))
    return label, minutes, errors


PRESET_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "v"))  # (line, marker) of the 1st, 2nd, ... preset


def time_style(preset_index: int, seed: int) -> dict:
    """How a run's curve is drawn in a time-to-accuracy figure: its seed's colour (the same seed of two presets
    shares it), its preset's line and marker."""
    line, marker = PRESET_STYLES[preset_index % len(PRESET_STYLES)]
    return {"color": f"C{seed % 10}", "ls": line, "marker": marker}


def _time_file(variant: str) -> str:
    return f"{variant}_time_to_accuracy.png"


def plot_time_to_accuracy(records: list[dict], meta: dict, out: Path) -> list[tuple[str, str, Path]]:
    """One PNG per variant: error after each epoch against training time, a colour per seed, a line and
    marker per preset (`time_style`), the paper's number as a dashed line, the legend below the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec, written = meta.get("time_to_accuracy"), []
    for variant, runs in _time_groups(records, meta).items():
        fig, ax = plt.subplots(figsize=(7, 5.6), dpi=100)
        for p_index, preset in enumerate(spec["presets"]):
            ordered = sorted((r for r in runs if _preset(r) == preset), key=lambda r: (r["seed"], r["_path"]))
            for r in ordered:
                label, minutes, errors = time_to_accuracy_points(r, spec)
                stopped = sum(s.get("stopped_s") or 0 for s in _sessions(r)) / 60
                shared = f" (stopped {stopped:.0f} min: it shared its machine)" if stopped >= 1 else ""
                ax.plot(minutes, errors, lw=1, ms=3, alpha=0.8, **time_style(p_index, r["seed"]),
                        label=f"{preset}, seed {r['seed']}: {label}{shared}")
        if variant in meta.get("paper_values", {}):
            ax.axhline(meta["paper_values"][variant], color="k", ls="--", lw=1,
                       label=f"paper: {meta['paper_values'][variant]:g} %")
        if spec.get("ylim"):
            ax.set_ylim(*spec["ylim"])
        left_out = spec.get("exclude_label") or ", ".join(spec.get("exclude", []))
        ax.set(xlabel="training time (min)" + (f", {left_out} left out" if left_out else ""), ylabel="error (%)",
               title=f"{variant}: error against training time, {len(runs)} run{'s' if len(runs) != 1 else ''}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        out.mkdir(parents=True, exist_ok=True)
        path = out / _time_file(variant)
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        written.append((variant, TIME_FIGURE, path))
    return written


def _draw_all(records: list[dict], meta: dict, out: Path, draw: bool) -> list[tuple[str, str, Path]]:
    """Every figure of a report: the learning curves, then the time-to-accuracy figures; drawn when
    `draw`, else only their paths."""
    if draw:
        return plot_curves(records, meta, out) + plot_time_to_accuracy(records, meta, out)
    return ([(v, p, out / _curve_file(v, p)) for v, p in _curve_groups(records, meta)]
            + [(v, TIME_FIGURE, out / _time_file(v)) for v in _time_groups(records, meta)])


def paper_report(paper: str, records: list[dict], meta: dict, figures: list[tuple[str, str, str]],
                 report_dir: Path | None = None, superseded: dict[str, str] | None = None) -> str:
    frame = _runs_frame(records, meta)
    summary = summary_rows(frame, meta)
    lines = [GENERATED, f"# {meta['title']}: results", "", f"Paper: {meta['citation']}.",
             f"Paper numbers: {meta['source']}.", "",
             f"## Summary: {meta['metric_label']}, mean ± std over {meta.get('repeats', 'seeds')}", "",
             "Only rows marked *paper's recipe* ran the paper's recipe; rows marked *our recipe for the paper's "
             "protocol* ran the paper's protocol with settings the paper does not give (README, Deviations); the "
             "others (shortened presets, or `-custom` runs whose command line changed the recipe) are not "
             "comparable with the paper's number.", "",
             _table(summary, {"variant": "model", "preset": "preset", "ours": "ours", "paper": "paper",
                              "n": meta.get("repeats", "seeds"), "wall": "wall time (mean)"})]
    lines += _modified_note(summary)
    lines += _mixed_code_note(summary)
    lines += _networks_note(summary)
    if _extras(meta):
        lines += ["", "### The other measures of these rows"]
        for heading, keys in _extra_tables(meta):
            lines += ["", *([f"**{heading}**", ""] if heading else []),
                      _table(summary, {"variant": "model", "preset": "preset", **keys})]
    lines += ["", "### What the rows cost", "",
              _table(summary, {"variant": "model", "preset": "preset", "iterations": "iterations", "epochs": "epochs",
                               "hardware": "hardware", "wall": "wall time (mean)"})]
    for variant, why in meta.get("no_data", {}).items():
        lines += ["", f"- No data for {variant}: {why}."]
    for ref in meta.get("references", []):
        lines += ["", f"- Reference: {ref['what']}: **{ref['value']}** ({ref['source']})."]
    lines += _claims(records, meta)
    if len(frame):
        runs = frame.sort_values(["variant", "preset", "seed", "file"]).to_dict("records")
        digits = meta.get("digits", 2)
        paths = {Path(r["_path"]).name: r["_path"] for r in records}
        for r in runs:
            r["file"] = _file_link(paths[r["file"]], report_dir)
            r["value"] = "–" if pd.isna(r["value"]) else f"{r['value']:.{digits}f}"
            for key, _, d in _extras(meta):
                r[key] = ("–" if r[key] is None or pd.isna(r[key]) else _show_value(r[key]) if d is None
                          else f"{r[key]:.{d}f}")
            r["wall_min"] = f"{r['wall_min']:.1f}"
            r["score_network_file"] = r["score_network_file"] if isinstance(r["score_network_file"], str) else "–"
            r["epochs"] = "–" if pd.isna(r["epochs"]) else _show_value(r["epochs"])
            rate = r["images_per_s"]
            r["images_per_s"] = "–" if pd.isna(rate) else f"{rate:.0f}" if rate >= 10 else f"{rate:.2f}"
            r["update_over_step"] = "–" if pd.isna(r["update_over_step"]) else f"{r['update_over_step']:.2f}"
        lines += ["", "## Every run", "",
                  _table(runs, {"variant": "model", "preset": "preset", "seed": "seed", "status": "status",
                                "value": meta["metric_label"], **{key: label for key, label, _ in _extras(meta)},
                                "epochs": "epochs", "device": "device", "backend": "backend",
                                "images_per_s": meta.get("throughput_label", "train images/s"),
                                # the update's time over its step's (common.lifecycle.training.StepClock), once timed
                                **({"update_over_step": "update / step"}
                                   if frame["update_over_step"].notna().any() else {}),
                                **({"score_network_file": "score network (SHA-256)"}
                                   if meta.get("score_network_metrics") else {}),
                                "wall_min": "wall (min)",
                                # how many processes a run took (resumes, relays), once any run took more than one
                                **({"sessions": "sessions"} if (frame["sessions"] > 1).any() else {}),
                                "commit": "commit", "file": "results file"})]
    bench = [r for r in records if r.get("kind") == "benchmark" and "pipeline_images_per_s" in r["final"]]
    if bench:
        rows, extra = [], {}
        # Once a record was timed with --tf_data_autotune=true, every row says whether Keras' tf.data pipelines
        # were autotuned (records from before the field existed were); and the validation pass once one is timed.
        if any(r["config"].get("tf_data_autotune") is True for r in bench):
            extra["autotune"] = "tf.data autotune"
        if any("validation_pass_s" in r["final"] for r in bench):
            extra["validation"] = "validation pass (s)"
        for r in sorted(bench, key=lambda r: (r["variant"], r["device"]["name"], r["_path"])):
            f = r["final"]
            passes = f.get("all_measurements", {}).get("validation_pass_s")
            rows.append({"variant": r["variant"], "device": _device(r), "backend": _backend(r),
                         "jit": r["config"].get("jit_compile"), "batch": r["config"].get("batch_size"),
                         "autotune": {True: "yes", False: "no"}.get(r["config"].get("tf_data_autotune"),
                                                                    "yes (older code)"),
                         "pipeline": f"{f['pipeline_images_per_s']:.0f}",
                         "memory": f"{f['in_memory_images_per_s']:.0f}",
                         "overhead": f"{100 * f['pipeline_overhead']:.1f} %",
                         "validation": ", ".join(f"{v:.1f}" for v in passes) if passes else "–",
                         "commit": _commit(r["git"]), "file": _file_link(r["_path"], report_dir)})
        lines += ["", "## Training throughput", "",
                  "Images per second of the full train step (forward, backward, SGD update), best of the "
                  "repeats, compilation excluded. *Pipeline*: `fit` on the training pipeline (shuffled, "
                  "padded, cropped and flipped batches built by worker threads), as `train.py` runs it. "
                  "*In memory*: `fit` on the same batches, built beforehand and held in one array. "
                  "Overhead = 1 − pipeline / in memory. XLA `auto` is off on a TensorFlow CPU."
                  + (" *Validation pass*: seconds of each `evaluate` on the validation images after a pair of "
                     "measurements, as each paper-recipe epoch ends." if "validation" in extra else ""), "",
                  _table(rows, {"variant": "model", "device": "device", "backend": "backend", "jit": "XLA",
                                "batch": "batch", **({"autotune": extra["autotune"]} if "autotune" in extra else {}),
                                "pipeline": "pipeline (img/s)", "memory": "in memory (img/s)",
                                "overhead": "pipeline overhead",
                                **({"validation": extra["validation"]} if "validation" in extra else {}),
                                "commit": "commit", "file": "results file"})]
    lines += _summary_benchmarks(records, report_dir)
    if superseded:
        lines += ["", "## Superseded runs", "",
                  "Kept in results/ but left out of every table above, for the reason given "
                  f"(results/{paper}/{results_lib.SUPERSEDED}).", "",
                  *[f"- `{name}`: {reason}." for name, reason in sorted(superseded.items())]]
    curves = [f for f in figures if f[1] != TIME_FIGURE]
    if curves:
        lines += ["", "## Learning curves", ""]
        for variant, preset, rel in curves:
            lines += [f"![{variant} {preset}]({rel})", ""]
    timed = [f for f in figures if f[1] == TIME_FIGURE]
    if timed:
        spec = meta["time_to_accuracy"]
        lines += ["", "## Time to accuracy", "",
                  f"The error after each epoch against the training time so far, for the runs of preset(s) "
                  f"{', '.join(spec['presets'])} side by side; each run draws the first it logs of: "
                  + "; ".join(label for _, label in spec["curves"]) + ". Time is the sum of the epochs' "
                  "wall times on each run's own hardware (the per-run table), less "
                  + (", ".join(f"`{k}`" for k in spec["exclude"]) if spec.get("exclude") else "nothing")
                  + ". Runs that shared a machine with other runs are slower than alone.", ""]
        for variant, _, rel in timed:
            lines += [f"![{variant} {TIME_FIGURE}]({rel})", ""]
    lines += _run_figures(records, meta, report_dir)
    return "\n".join(lines).rstrip() + "\n"


def _networks_note(rows: list[dict]) -> list[str]:
    if not any(NETWORKS_MARK in str(v) for r in rows for v in r.values()):
        return []
    return ["", f"{NETWORKS_MARK} Averaged over runs scored with different score-network files: the same recipe "
                "of classifier, trained again, is another network, and its scores are another measure. Compare "
                "such numbers only between runs of one network (*Every run*: the start of each file's SHA-256)."]


def _mixed_code(done: pd.DataFrame, meta: dict) -> list[str]:
    """The paper's own code files (`.py` under its folder) that differ between the commits the row's runs ran
    (each run's sessions, the runs in the order they finished), or [] when they ran the same code of the paper
    or git cannot tell."""
    commits = list(dict.fromkeys(c for run in done.sort_values("order")["commits"] for c in run))
    if len(commits) < 2 or "_folder" not in meta:
        return []
    return [f for f in repro.changed_files(commits, [meta["_folder"]]) or [] if f.endswith(".py")]


def _mixed_code_note(rows: list[dict]) -> list[str]:
    if not any(MIXED_CODE_MARK in str(r["ours"]) for r in rows):
        return []
    return ["", f"{MIXED_CODE_MARK} The runs of this row ran different versions of the paper's code (its `.py` files "
                "changed between their commits; the commit column of *Every run* says which run ran which), so they "
                "are not strictly repeats of one program."]


def _modified_note(rows: list[dict]) -> list[str]:
    if not any(MODIFIED_MARK in str(r["ours"]) for r in rows):
        return []
    return ["", f"{MODIFIED_MARK} At least one run of this row was made from a modified tree (code that differs "
                "from its commit) or resumed under changed code: see the commit column of *Every run*."]


def _claim_value(record: dict, spec: dict) -> float | None:
    """One number a claim is judged on: `difference` of two final metrics, or the `gain` of a history
    key between the epoch at `from_fraction` of the run and its last epoch, or the Spearman
    `correlation` of two history keys over the epochs where both were logged; times `scale` if given."""
    if "correlation" in spec:
        a, b = spec["correlation"]
        pairs = pd.DataFrame([(h.get(a), h.get(b)) for h in record["history"]], columns=["a", "b"]).dropna()
        if len(pairs) < 3:
            return None
        rho = pairs["a"].corr(pairs["b"], method="spearman")
        return None if pd.isna(rho) else float(rho) * spec.get("scale", 1)
    if "difference" in spec:
        a, b = (record["final"].get(k) for k in spec["difference"])
        return None if a is None or b is None else (a - b) * spec.get("scale", 1)
    values = [h[spec["gain"]] for h in record["history"] if h.get(spec["gain"]) is not None]
    if len(values) < 2:
        return None
    start = values[min(len(values) - 2, int(spec.get("from_fraction", 0.5) * len(values)) - 1)]
    return (values[-1] - start) * spec.get("scale", 1)


SIGNIFICANCE = 0.05  # the claims' tests: two-sided, at this level


def _spearman(record: dict, spec: dict) -> tuple[float, float] | None:
    """(rho, p) of the Spearman correlation of two history keys over the epochs where both were logged."""
    from scipy.stats import spearmanr

    a, b = spec["correlation"]
    pairs = pd.DataFrame([(h.get(a), h.get(b)) for h in record["history"]], columns=["a", "b"]).dropna()
    if len(pairs) < 3 or pairs["a"].nunique() < 2 or pairs["b"].nunique() < 2:
        return None
    rho, p = spearmanr(pairs["a"], pairs["b"])
    return float(rho), float(p)


ONE_RUN = "one run: no verdict"  # a row with one run shows its value but is not judged or counted


def _verdict(values: list[float], op: str, threshold: float, margin: float, runs: int | None = None
             ) -> tuple[str, str]:
    """A row's verdict on a difference or gain claim, and the statistic it rests on: the 95 % confidence
    interval of the mean over runs (Student's t) must lie beyond the threshold by more than `margin` on the
    claimed side to support the claim, on the other side to contradict it; otherwise the row is inconclusive.
    Values of one run (`runs`: how many runs they come from, default one each) are not judged: `ONE_RUN`."""
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2 or (runs if runs is not None else len(values)) < 2:
        return ONE_RUN, f"{mean:.2f} (no interval)"
    half = float(stats.t.ppf(1 - SIGNIFICANCE / 2, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    low, high, shown = mean - half, mean + half, f"{mean:.2f} [{mean - half:.2f}, {mean + half:.2f}]"
    sign = 1 if op == ">" else -1
    if sign * (low if sign > 0 else high) > sign * threshold + margin:
        return "supports", shown
    if sign * (high if sign > 0 else low) < sign * threshold - margin:
        return "**contradicts**", shown
    return "inconclusive", shown


def _correlation_verdict(tests: list[tuple[float, float]], op: str, threshold: float) -> tuple[str, str]:
    """Each run's Spearman correlation is significant on the claimed side (p < SIGNIFICANCE) or on the
    other; the row supports (contradicts) the claim when every run does, and is inconclusive otherwise."""
    sides = []
    for rho, p in tests:
        claimed = rho > threshold if op == ">" else rho < threshold
        sides.append(0 if p >= SIGNIFICANCE else 1 if claimed else -1)
    shown = f"ρ {np.mean([r for r, _ in tests]):.2f} (p {min(p for _, p in tests):.3g}" + (
        f"-{max(p for _, p in tests):.3g})" if len(tests) > 1 else ")")
    if len(tests) < 2:
        return ONE_RUN, shown
    if all(side == 1 for side in sides):
        return "supports", shown
    if all(side == -1 for side in sides):
        return "**contradicts**", shown
    return "inconclusive", shown


def _paired(a: dict, b: dict, claim: dict) -> list[float]:
    """The differences a `between` claim is judged on for two runs of one seed: of their `key`, or fold by fold
    of their `fold_key` lists (cross-validations on the same fixed folds)."""
    scale = claim.get("scale", 1)
    if "fold_key" not in claim:
        return [(a["final"][claim["key"]] - b["final"][claim["key"]]) * scale]
    fa, fb = a["final"][claim["fold_key"]], b["final"][claim["fold_key"]]
    if len(fa) != len(fb):
        return []
    return [(x - y) * scale for x, y in zip(fa, fb, strict=True)]


def _claims(records: list[dict], meta: dict) -> list[str]:
    """paper.json's `claims`: for each claim and (variant, preset), the number it is judged on, the
    statistic of a stated test (see `_verdict`, `_correlation_verdict`) and the verdict: supports,
    contradicts or inconclusive. `margin` (in the measure's units) is the smallest effect that counts."""
    runs = [r for r in records if r.get("kind", "training") == "training" and r["status"] == "completed"]
    if not meta.get("claims") or not runs:
        return []
    order = {v: i for i, v in enumerate(meta.get("variant_order", []))}
    lines = ["", "## The paper's claims, checked on these runs", ""]
    for claim in meta["claims"]:
        op, threshold = claim["holds_if"]
        margin = claim.get("margin", 0.0)
        side = "above" if op == ">" else "below"
        if "correlation" in claim:
            rule = (f"a row supports the claim when the correlation of every run is {side} {threshold} and "
                    f"significant (Spearman's test, p < {SIGNIFICANCE}), contradicts it when every run is "
                    f"significant on the other side, and is inconclusive otherwise; a row of one run is not judged")
        else:
            rule = (f"a row supports the claim when the 95 % confidence interval of its mean over runs lies "
                    f"{side} {threshold} by more than {margin:g}, contradicts it when it lies beyond that on the "
                    f"other side, and is inconclusive otherwise; a row of one run shows its value and is not judged")
        lines += [f"**{claim['claim']}** Judged on: {claim['measure']}; {rule}."
                  + (f" {claim['interval']}" if claim.get("interval") else ""), ""]
        rows, verdicts = [], []
        if "between" in claim:  # two variants' runs of one preset, paired by seed (and fold: `fold_key`)
            first, second = claim["between"]
            lines[-2] += (
                " Runs are paired by seed and by fold (the same held-out subjects), so the interval covers the "
                "variation over seeds and folds, with the folds' subjects fixed." if "fold_key" in claim else
                " Runs are paired by seed; the interval covers the variation over seeds.")
            for preset in sorted({_preset(r) for r in runs}):
                by_seed = [{r["seed"]: r for r in runs if r["variant"] == v and _preset(r) == preset}
                           for v in (first, second)]
                seeds = sorted(set(by_seed[0]) & set(by_seed[1]))
                values = [value for s in seeds for value in _paired(by_seed[0][s], by_seed[1][s], claim)]
                if values:
                    verdict, shown = _verdict(values, op, threshold, margin, runs=len(seeds))
                    verdicts.append(verdict.strip("*"))
                    rows.append({"variant": f"{first} minus {second}", "preset": preset, "value": shown,
                                 "n": len(seeds) if "fold_key" not in claim else
                                 f"{len(seeds)} ({len(values)} seed-fold pairs)", "verdict": verdict})
            keys = []
        else:
            keys = sorted({(r["variant"], _preset(r)) for r in runs}, key=lambda k: (order.get(k[0], 99), k))
        for variant, preset in keys:
            group = [r for r in runs if (r["variant"], _preset(r)) == (variant, preset)]
            if "correlation" in claim:
                tests = [t for r in group if (t := _spearman(r, claim)) is not None]
                if not tests:
                    continue
                verdict, shown = _correlation_verdict(tests, op, threshold)
                n = len(tests)
            else:
                values = [v for r in group if (v := _claim_value(r, claim)) is not None]
                if not values:
                    continue
                verdict, shown = _verdict(values, op, threshold, margin)
                n = len(values)
            verdicts.append(verdict.strip("*"))
            rows.append({"variant": variant, "preset": preset, "value": shown, "n": n, "verdict": verdict})
        if not rows:
            lines += ["Not judged yet: no finished runs of what it compares.", ""]
            continue
        counts = {v: verdicts.count(v) for v in ("supports", "contradicts", "inconclusive", ONE_RUN)}
        judged = len(verdicts) - counts[ONE_RUN]
        lines += [_table(rows, {"variant": "model", "preset": "preset", "value": claim["measure"], "n": "runs",
                                "verdict": "verdict"}), "",
                  (f"Of {judged} rows judged: {counts['supports']} support the claim, {counts['contradicts']} "
                   f"contradict it, {counts['inconclusive']} are inconclusive." if judged else "No row judged.")
                  + (f" {counts[ONE_RUN]} with one run each are not judged." if counts[ONE_RUN] else ""), ""]
    return lines


def _kind_rows(final: dict, facts: dict) -> list[dict]:
    """A benchmark of several kinds timed in turn (`images_per_s` per kind; with peers, `best_peer` or
    `best_peer_by_precision` and `ratio_<kind>_vs_best_peer`): one row per kind, so that a run measuring many
    settings stays a readable table, with or without a peer among them (PyTorch is optional); [] for any
    other benchmark. `facts`: the record's facts per kind, where ours name their Keras backend."""
    rates = final.get("images_per_s")
    if not isinstance(rates, dict) or "best_peer_by_precision" not in final and "best_peer" not in final:
        return []
    shared = {k: v for k, v in final.get("summary", {}).items() if k in ("batch", "steps x repeats")}
    rows = []
    for kind, rate in rates.items():
        ratio = final.get(f"ratio_{kind}_vs_best_peer")
        by = final.get("best_peer_by_precision", {}).get("bfloat16" if "bfloat16" in kind or kind.endswith("-bf16")
                                                        else "float32", final.get("best_peer"))
        rows.append({"kind": kind, "images/s": f"{rate:.0f}",
                     "ours / best peer": f"{ratio:.2f}x ({by})" if ratio is not None
                     else "no peer of its precision timed" if "backend" in facts.get(kind, {}) else "peer",
                     **shared})
    return rows


def _summary_benchmarks(records: list[dict], report_dir: Path | None = None) -> list[str]:
    """Benchmarks that carry their own `summary` (column -> formatted value), or `summary_rows` (several
    such rows), and `description`."""
    bench = [r for r in records if r.get("kind") == "benchmark" and ("summary" in r["final"]
                                                                    or "summary_rows" in r["final"])]
    if not bench:
        return []
    rows, columns = [], {"variant": "model", "device": "device", "backend": "backend"}
    # Once a record was timed with --fused_batchnorm=false, every row says which batch normalisation it ran
    # (records from before the field existed ran Keras' composed ops).
    if any(r["config"].get("fused_batchnorm") is False for r in bench):
        columns["fused"] = "fused batch norm"
    for r in sorted(bench, key=lambda r: (r["variant"], r["device"]["name"], r["_path"])):
        fused = {True: "yes", False: "no"}.get(r["config"].get("fused_batchnorm"), "no (older code)")
        parts = r["final"].get("summary_rows") or _kind_rows(r["final"], r.get("kinds", {})) or [r["final"]["summary"]]
        for part in parts:
            columns.update({k: k for k in part})
            rows.append({"variant": r["variant"], "device": _device(r), "backend": _backend(r), "fused": fused,
                         **part, "commit": _commit(r["git"]), "file": _file_link(r["_path"], report_dir)})
    columns.update(commit="commit", file="results file")
    description = bench[-1].get("description", "")
    title = bench[-1]["final"].get("title", "Benchmarks")
    return ["", f"## {title}", "", *([description, ""] if description else []),
            _table([{k: row.get(k, "–") for k in columns} for row in rows], columns)]


def _run_figures(records: list[dict], meta: dict, report_dir: Path | None) -> list[str]:
    """Figures a run wrote itself (samples, reconstructions, ...; `figures` in its record, relative to
    its results folder): for each (variant, preset), those of its lowest seed's latest run."""
    chosen: dict[tuple[str, str], dict] = {}
    for r in sorted(records, key=lambda r: (-r["seed"], r["_path"])):
        if r.get("kind", "training") == "training" and r["status"] == "completed" and r.get("figures"):
            chosen[(r["variant"], _preset(r))] = r
    if not chosen or report_dir is None:
        return []
    order = {v: i for i, v in enumerate(meta.get("variant_order", []))}
    lines = ["", "## Figures from the runs", ""]
    for (variant, preset), r in sorted(chosen.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0])):
        cells = []
        for name, rel in r["figures"].items():
            path = _relpath(Path(r["_path"]).parent / rel, report_dir)
            cells.append(f"![{variant} {preset} {name}]({path})")
        lines += [f"**{variant}**, preset {preset}, seed {r['seed']} ({', '.join(r['figures'])}):", "",
                  *[c + "\n" for c in cells]]
    return lines


HEADLINE_WORDS = {"paper's recipe": "comparable", "our recipe for the paper's protocol": "our recipe",
                  "not the paper's recipe": "shortened"}


def _leading_number(text) -> float | None:
    """The paper's number as a float: 8.75, or the 132 of '132 ± 1.8'; None for '–' or text."""
    m = re.match(r"\s*(-?\d+(?:\.\d+)?)", str(text))
    return float(m.group(1)) if m else None


def headline_rows(frame: pd.DataFrame, meta: dict) -> list[dict]:
    """One row per model of the paper's own configurations (paper.json's paper_rows, paper_values and no_data;
    every model when it names none): its paper-recipe row where that ran, else the named preset whose runs
    trained longest (the closest to the paper's recipe), else 'not run yet'; with the paper's number, the
    difference and one word on comparability (comparable, our recipe, shortened)."""
    paper_preset = meta.get("paper_preset", "paper")
    rows = summary_rows(frame, meta)
    papers_own = {*meta.get("paper_rows", meta.get("paper_values", {})), *meta.get("no_data", {})}
    by_variant: dict[str, list[tuple[str, dict]]] = {}
    for (variant, preset), row in zip(_order(frame, meta), rows, strict=True):
        if "-custom" not in preset and preset not in PLUMBING_PRESETS and (variant in papers_own or not papers_own):
            by_variant.setdefault(variant, []).append((preset, row))
    chosen = []
    for variant, candidates in by_variant.items():
        ran = [(p, r) for p, r in candidates if r["ours"] not in ("not run yet", "no data")]
        if any(p == paper_preset for p, _ in ran):
            preset, row = next((p, r) for p, r in ran if p == paper_preset)
        elif ran:  # the named preset whose runs trained longest
            lengths = {p: pd.to_numeric(frame[(frame["variant"] == variant) & (frame["preset"] == p)]["iterations"],
                                        errors="coerce").max() for p, _ in ran}
            preset, row = max(ran, key=lambda item: lengths[item[0]])
        else:
            preset, row = candidates[0]
        label = row["preset"].split(" (", 1)[1].rstrip(")") if " (" in row["preset"] else ""
        ours, theirs = _leading_number(row["ours"]), _leading_number(row["paper"])
        runs = row["n"].split(" ")[0]
        chosen.append({"variant": variant, "preset": preset,
                       "ours": row["ours"] + (f" (n={runs})" if row["ours"] not in ("not run yet", "no data") else ""),
                       "paper": row["paper"],
                       "difference": f"{ours - theirs:+.{meta.get('digits', 2)}f}"
                       if ours is not None and theirs is not None else "–",
                       "comparable": (row["ours"] if row["ours"] in ("not run yet", "no data")
                                      else HEADLINE_WORDS.get(label, label))})
    return chosen


def readme_table(results_dir: Path, papers_dir: Path) -> str:
    """The README's headline table: one row per paper and model (`headline_rows`); every other row is in the
    paper's REPORT.md and results/summary.csv."""
    rows = []
    for paper in papers(papers_dir):
        meta = paper_meta(paper, papers_dir)
        frame = _runs_frame(results_lib.load_all(results_dir, paper), meta)
        for row in headline_rows(frame, meta):
            rows.append({**row, "paper_name": f"[{paper}](papers/{paper}/REPORT.md)",
                         "metric": meta.get("metric_short", meta["metric_label"])})
    return _table(rows, {"paper_name": "paper", "variant": "model", "metric": "metric", "preset": "preset",
                         "ours": "ours (mean ± std, n)", "paper": "paper", "difference": "difference",
                         "comparable": "comparable?"})


def _replace_between(text: str, body: str) -> str:
    if README_START not in text or README_END not in text:
        raise ValueError(f"README.md lacks the markers {README_START} ... {README_END}")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{body}\n{README_END}{tail}"


def render(results_dir: Path, papers_dir: Path, readme: Path, figures_root: Path, draw: bool) -> dict[Path, str]:
    """The text of every generated file; draws the plots when `draw`."""
    out = {}
    for paper in papers(papers_dir):
        meta = paper_meta(paper, papers_dir)
        records = results_lib.load_all(results_dir, paper)
        report_path = papers_dir / paper / "REPORT.md"
        fig_dir = figures_root / paper / "figures"
        drawn = _draw_all(records, meta, fig_dir, draw)
        figures = [(v, p, _relpath(path, report_path.parent)) for v, p, path in drawn]
        out[report_path] = paper_report(paper, records, meta, figures, report_path.parent,
                                        results_lib.load_superseded(results_dir, paper))
    if readme.exists():
        out[readme] = _replace_between(readme.read_text(), readme_table(results_dir, papers_dir))
    out[results_dir / "summary.csv"] = summary_csv(results_dir, papers_dir)
    return out


SUMMARY_COLUMNS = ("paper", "model", "preset", "recipe", "metric", "mean", "std", "n", "paper_value", "marks",
                   "records")


def summary_csv(results_dir: Path, papers_dir: Path) -> str:
    """results/summary.csv: one row per paper, model, preset and metric (the headline and every numeric extra
    column) with the mean and standard deviation (ddof 1) over the row's runs as the reports count them, n, the
    paper's number, the row's recipe label and marks (see REPORT.md), and its results files."""
    rows = []
    for paper in papers(papers_dir):
        meta = paper_meta(paper, papers_dir)
        frame = _runs_frame(results_lib.load_all(results_dir, paper), meta)
        frame = frame[~frame["preset"].str.split(" ").str[0].str.removesuffix("-custom").isin(PLUMBING_PRESETS)]
        metrics = [("value", meta["metric_label"]), *((key, label) for key, label, digits in _extras(meta)
                                                       if digits is not None)]
        for (variant, preset), shown in zip(_order(frame, meta), summary_rows(frame, meta), strict=True):
            group = frame[(frame["variant"] == variant) & (frame["preset"] == preset)]
            done = group[group["status"] == "completed"].sort_values("order").drop_duplicates("config_hash",
                                                                                             keep="last")
            marks = "".join(m for m in (MODIFIED_MARK, MIXED_CODE_MARK, NETWORKS_MARK) if m in str(shown.get("ours")))
            for key, label in metrics:
                values = pd.to_numeric(done[key], errors="coerce").dropna() if len(done) else pd.Series(dtype=float)
                if key != "value" and values.empty:
                    continue
                rows.append({"paper": paper, "model": variant, "preset": preset,
                             "recipe": _recipe_label(meta, variant, preset).strip(" ()"), "metric": label,
                             "mean": values.mean() if len(values) else None,
                             "std": values.std(ddof=1) if len(values) > 1 else None, "n": len(values),
                             "paper_value": meta.get("paper_values", {}).get(variant) if key == "value" else None,
                             "marks": marks, "records": ";".join(done["file"])})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).to_csv(index=False, float_format="%.6g", lineterminator="\n")


def _file_link(path: str | Path, report_dir: Path | None) -> str:
    """A results file's name, linked from the REPORT in `report_dir` (none: the name alone)."""
    name = Path(path).name
    return name if report_dir is None else f"[{name}]({_relpath(Path(path), report_dir)})"


def _relpath(path: Path, start: Path) -> str:
    import os

    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def write_all(results_dir: Path = REPO / "results", papers_dir: Path = REPO / "papers",
              readme: Path = REPO / "README.md") -> list[Path]:
    written = []
    for path, text in render(results_dir, papers_dir, readme, results_dir, draw=True).items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def check(results_dir: Path = REPO / "results", papers_dir: Path = REPO / "papers",
          readme: Path = REPO / "README.md") -> list[str]:
    """The generated files that differ from what results/ gives, and the results files that cannot be
    read (empty when all are current)."""
    stale = []
    results_lib.load_all(results_dir, superseded=True, problems=stale)
    stale += relay.stale_packs(results_dir, results_dir / "relay")
    for paper in papers(papers_dir):
        for name in results_lib.load_superseded(results_dir, paper):
            if not (results_dir / paper / name).exists():
                stale.append(f"{results_dir / paper / results_lib.SUPERSEDED}: names a missing record {name}")
    for path, text in render(results_dir, papers_dir, readme, results_dir, draw=False).items():
        if not path.exists() or path.read_text() != text:
            stale.append(str(path))
        for line in text.splitlines():
            if line.startswith("![") and not (path.parent / line.split("](", 1)[1].rstrip(")")).exists():
                stale.append(f"{path}: missing figure {line}")
    return stale


def report_for(results_dir: str | Path, paper: str, draw: bool = True) -> str:
    """One paper's REPORT.md text from the records in `results_dir` (e.g. a test's or a user's own
    results folder), its figures drawn into `results_dir/<paper>/figures` and linked from there."""
    results_dir = Path(results_dir)
    meta, records = paper_meta(paper), results_lib.load_all(results_dir, paper)
    folder = results_dir / paper
    drawn = _draw_all(records, meta, folder / "figures", draw=True) if draw else []
    figures = [(v, p, _relpath(path, folder)) for v, p, path in drawn]
    return paper_report(paper, records, meta, figures, folder, results_lib.load_superseded(results_dir, paper))


WANTED_REPEATS = 3  # what a row needs before its mean ± std is a baseline


def _arg(field: str, value) -> str:
    shown = (str(value).lower() if isinstance(value, bool) else ",".join(map(str, value))
             if isinstance(value, list | tuple) else value)
    return f"--{field}={shown}"


def _cost(group: pd.DataFrame, others: pd.DataFrame, siblings: pd.DataFrame, flight: dict | None = None) -> str:
    """What one more run of a row costs, from records (each time with its machine and backend: a run's speed
    depends on both): the mean wall time of the row's own runs; else, where
    one of its runs is in flight with a known pace (`flight`, `relay.pace`), its epochs at that pace; and what
    another size of the same model took at this preset (`siblings`, the one with most runs: a VAE's other
    latent sizes, a shallower ResNet) and what the same model took at another preset, for the reader to scale."""
    if len(group):
        return _took(group)
    known = []
    if flight and flight.get("epochs") and flight.get("epoch_s"):
        known.append(f"at the pace of its run in flight about {flight['epochs'] * flight['epoch_s'] / 3600:.1f} h a "
                     f"run ({flight['epochs']} epochs at {flight['epoch_s']:.0f} s"
                     + (f", on {flight['machine']})" if flight.get("machine") else ")"))
    if len(siblings):
        nearest = siblings["variant"].value_counts(sort=False).idxmax()  # ties: the first recorded
        runs = siblings[siblings["variant"] == nearest]
        known.append(f"at this preset {nearest} took {_took(runs)}")
    if len(others):
        o = others.sort_values("wall_min").iloc[-1]
        known.append(f"at preset {o['preset']} it took {_duration(o['wall_min'])} for "
                     f"{_show_value(o['iterations'])} iterations on {o['device']} / {o['backend']}")
    return "not measured; " + "; ".join(known) if known else "not measured on any machine yet"


def _took(runs: pd.DataFrame) -> str:
    """What a run took on each machine it ran on (device and backend: both set its speed), one mean per
    machine: a mean over machines that differ up to 2x would be a time that no machine takes."""
    return ", ".join(f"{_duration(g['wall_min'].mean())} per run (mean of {len(g)} on {machine})"
                     for machine, g in runs.groupby(runs["device"] + " / " + runs["backend"], sort=True))


def _in_flight(results_dir: Path, runs_dir: Path) -> dict[tuple[str, str], tuple[str, str, dict | None]]:
    """(paper, run folder) -> where that unfinished run stands (a pack under results/relay/, common.relay, or a
    working folder under `runs_dir`: the later epoch of the two), the environment its command needs (the
    run's backend where it is not TensorFlow: a run resumes only on its own) and its pace (`relay.pace`)."""
    found = {}
    for path in relay.packs(results_dir / "relay"):
        manifest = relay.read_manifest(path)
        found[(manifest["paper"], manifest["run"])] = (manifest["epoch"],
                                                       f"packed in {path.relative_to(results_dir.parent)}",
                                                       manifest["command"], manifest.get("pace"))
    for run in relay.in_flight(runs_dir):
        key = (run["paper"], run["run"])
        if run["epoch"] >= found.get(key, (-1,))[0]:
            found[key] = (run["epoch"], f"in {run['dir']}" + (", running now" if run["running"] else ""),
                          run["command"], run["pace"])
    return {key: ("; in flight: " + relay.standing(epoch, pace, f" {where}"), relay.backend_env(command), pace)
            for key, (epoch, where, command, pace) in found.items()}


def missing(results_dir: Path = REPO / "results", papers_dir: Path = REPO / "papers",
            runs_dir: Path = REPO / "runs") -> list[str]:
    """One shell line per run that a table row lacks: every paper-recipe or named-preset row (not a custom or
    plumbing one, not one whose data is out of reach) with fewer than `WANTED_REPEATS` finished runs gets the
    commands of its next repeats (paper.json's `repeat_field`), each followed by `# cost` from the records,
    and by where the run stands when it is in flight: its pack under results/relay/ (common.relay) or its
    working folder under `runs_dir`, matched by the folder name the command trains in."""
    flying = _in_flight(results_dir, runs_dir)
    lines = []
    for paper in papers(papers_dir):
        meta = paper_meta(paper, papers_dir)
        frame = _runs_frame(results_lib.load_all(results_dir, paper), meta)
        configs = {Path(r["_path"]).name: r["config"] for r in results_lib.load_all(results_dir, paper)}
        field, first = meta.get("repeat_field", "seed"), meta.get("repeat_first", 0)
        paper_preset = meta.get("paper_preset", "paper")
        for variant, preset in _order(frame, meta):
            if "-custom" in preset or preset in PLUMBING_PRESETS or variant in meta.get("no_data", {}):
                continue
            of_variant = frame[(frame["variant"] == variant) & (frame["status"] == "completed")]
            group = of_variant[of_variant["preset"] == preset].sort_values("order").drop_duplicates("config_hash",
                                                                                                   keep="last")
            done = {configs[f].get(field) for f in group["file"]}
            if len(done) >= WANTED_REPEATS:
                continue
            if len(of_variant):
                config = configs[of_variant.iloc[0]["file"]]
                chosen = {f: config[f] for f in meta.get("variant_fields", []) if f in config}  # older: default
            elif variant in meta.get("variants", {}):
                chosen = meta["variants"][variant]
            else:
                lines.append(f"# {paper} {variant} ({preset}): no record and no paper.json `variants` entry to "
                             f"make its command from")
                continue
            head = [f"python papers/{paper}/train.py", *([] if preset == paper_preset else [f"--preset={preset}"]),
                    *(_arg(f, v) for f, v in chosen.items())]
            # Another model of the paper is a guide to this one's cost when it differs only in size (a number:
            # depth, latent size, label count), not in data or kind (a string or a flag).
            made = command_config(paper, head[1:])
            full = dataclasses.asdict(made[1]) if made else chosen
            kind = {f: full[f] for f in meta.get("variant_fields", []) if f in full
                    and (isinstance(full[f], bool) or not isinstance(full[f], int | float))}
            siblings = frame[(frame["variant"] != variant) & (frame["preset"] == preset)
                             & (frame["status"] == "completed")
                             & np.array([all(configs[f].get(k) == v for k, v in kind.items()) for f in frame["file"]],
                                        bool)]
            repeats = [v for v in range(first, first + 100) if v not in done][:WANTED_REPEATS - len(done)]
            commands = [[*head[1:], _arg(field, v)] for v in repeats]
            stands = [flying.get((paper, command_run_dir(paper, args)), ("", "", None)) if flying else ("", "", None)
                      for args in commands]
            paces = [pace for _, _, pace in stands if pace and pace.get("epochs") and pace.get("epoch_s")]
            cost = _cost(group, of_variant[of_variant["preset"] != preset], siblings, paces[0] if paces else None)
            for args, (where, env, _) in zip(commands, stands, strict=True):
                lines.append(env + " ".join([head[0], *args]) + f"  # {paper} {variant} {preset}: {cost}{where}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common.report", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    ap.add_argument("--missing", action="store_true", help="print the command of every run a row lacks (a row of "
                    f"the paper's recipe or a named preset with fewer than {WANTED_REPEATS} runs), one per line, "
                    "with its cost from the records")
    ap.add_argument("--results_dir", type=Path, default=REPO / "results")
    ap.add_argument("--runs_dir", type=Path, default=REPO / "runs",
                    help="with --missing: where this machine's unfinished runs work (train.py's --runs_dir)")
    args = ap.parse_args(argv)
    if not any(Path(args.results_dir).glob("*/*.json")):  # a mistyped folder would empty every report
        ap.error(f"--results_dir {args.results_dir} holds no results records (<paper>/*.json): nothing to report")
    if args.missing:
        print("\n".join(missing(args.results_dir, runs_dir=args.runs_dir)))
        return 0
    if args.check:
        stale = check(args.results_dir)
        for s in stale:
            print(f"stale: {s}")
        if stale:
            print("Run `python -m common.report` and commit the result.")
            return 1
        print("Reports are up to date.")
        return 0
    for path in write_all(args.results_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
