"""Re-evaluate a finished DCGAN run on its saved networks, without retraining: the §5.1 SVM on its
discriminator, and (given a score network) the sample scores of its generator.

    python papers/dcgan/reevaluate.py results/dcgan/<run>.json            # the current preset's SVM settings
    python papers/dcgan/reevaluate.py results/dcgan/<run>.json --svm_epochs=40
    python papers/dcgan/reevaluate.py results/dcgan/<run>.json --feature_network=clf.keras \
        "--feature_network_name=CIFAR-10 classifier"                    # scores only, if the SVM is current

The SVM settings (`svm_*` fields) come from the run's preset as it is now, then from the command line;
the SVM runs again only when they changed. The score network and `score_samples` come from the
command line. Every other field stays as the run trained. The new record keeps the run's training provenance and
adds a `revision` block (this commit, device, time, the changed fields); the old record stays in
results/ but is marked superseded, so the two are never averaged together.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import common.tf_env  # noqa: F401

import keras

from common.lifecycle import config as cfg
from common.lifecycle import results
from papers.dcgan.config import PRESETS, DCGANConfig
from papers.dcgan.data import prepare_data
from papers.dcgan.evaluate import sample_scores, svm_evaluation

SVM_FIELDS = ("svm_alphas", "svm_epochs", "svm_val_size", "svm_train_subset")
SCORE_FIELDS = ("feature_network", "feature_network_name", "inception_weights", "score_samples")
USAGE = ("usage: python papers/dcgan/reevaluate.py RESULTS_JSON [--svm_FIELD=value ...] "
         "[--feature_network=FILE --feature_network_name=NAME] [--data_dir=DIR]")


def reevaluated_config(record: dict, argv: list[str]) -> tuple[str, DCGANConfig]:
    """The run's config with the current preset's SVM settings and the command line's overrides."""
    preset = record["preset"].removesuffix("-custom")
    allowed = {*SVM_FIELDS, *SCORE_FIELDS, "data_dir", "download", "results_dir"}
    _, given = cfg.parse_args(DCGANConfig, PRESETS, argv)  # converts and validates the values
    overrides = {a[2:].split("=", 1)[0] for a in argv}
    if overrides - allowed:
        raise cfg.ConfigError(f"only these fields can change on re-evaluation: {', '.join(sorted(allowed))}; "
                              f"got {', '.join(sorted(overrides - allowed))}")
    current = cfg.make_config(DCGANConfig, PRESETS, preset)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()}
    values.update({k: getattr(current, k) for k in SVM_FIELDS})
    values.update({k: getattr(given, k) for k in overrides})
    config = cfg.make_config(DCGANConfig, PRESETS, preset, **values)
    return cfg.run_label(DCGANConfig, PRESETS, preset, config), config


def reevaluate(record_path: str | Path, argv: list[str] = ()) -> Path:
    record_path = Path(record_path)
    (record,) = [r for r in results.load_all(record_path.parent.parent, record_path.parent.name, superseded=True)
                 if Path(r["_path"]).name == record_path.name] or [None]
    if record is None or record["paper"] != "dcgan":
        raise cfg.ConfigError(f"{record_path} is not a DCGAN results record")
    if record["status"] != "completed":
        raise cfg.ConfigError(f"{record_path} is a {record['status']} run: there is nothing to re-evaluate")
    d_file = record["final"].get("discriminator_file")
    if not d_file or not Path(d_file).exists():
        raise FileNotFoundError(f"{record_path.name}: its saved discriminator {d_file or '(none recorded)'} is "
                                "missing; only runs that saved discriminator.keras can be re-evaluated")
    label, config = reevaluated_config(record, list(argv))
    defaults = cfg.to_dict(DCGANConfig())
    new = cfg.to_dict(config)
    changed = {k: [record["config"].get(k, defaults[k]), new[k]] for k in (*SVM_FIELDS, *SCORE_FIELDS)
               if record["config"].get(k, defaults[k]) != new[k]}
    svm_changed = any(k in SVM_FIELDS for k in changed)
    network = config.score_network() if any(k in SCORE_FIELDS for k in changed) else None
    if not svm_changed and network is None:
        raise cfg.ConfigError(f"{record_path.name} was already evaluated with these SVM settings and no new "
                              "score network was given")
    g_file = record["final"].get("generator_file")
    if network is not None and (not g_file or not Path(g_file).exists()):
        raise FileNotFoundError(f"{record_path.name}: its saved generator {g_file or '(none recorded)'} is missing")
    started, t0 = results.utc_now(), time.perf_counter()
    print(f"Re-evaluating {record_path.name} (seed {config.seed}) with {changed}")
    data = prepare_data(config)
    final, extra, lines = {}, {"preset": label, "recipe_changes": cfg.recipe_changes(config, PRESETS, label)}, []
    if svm_changed:
        svm = svm_evaluation(config, keras.saving.load_model(d_file), data)
        final.update(svm_test_accuracy=svm["trained"]["accuracy"],
                     svm_test_accuracy_untrained_d=svm["untrained"]["accuracy"])
        extra["svm"] = svm
        was = record["final"]["svm_test_accuracy"]
        lines.append(f"SVM test accuracy {100 * svm['trained']['accuracy']:.2f} % (untrained D "
                     f"{100 * svm['untrained']['accuracy']:.2f} %), was {100 * was:.2f} %")
    if network is not None:
        scores, kept = sample_scores(config, keras.saving.load_model(g_file), network, data["test"])
        final.update(kept)
        extra["scores"] = scores
        lines.append(f"{network.name} score {scores['score']:.2f}, FD {scores['frechet_distance']:.2f}")
    reason = ("§5.1 SVM re-run" if svm_changed else "sample scores added") + " with " + ", ".join(
        f"{k} {v[0] if v[0] != '' else '(none)'} -> {v[1]}" for k, v in changed.items())
    path = results.write_revision(record, record_path.parent.parent, config=config, final=final, extra=extra,
                                  started=started, wall_time_s=time.perf_counter() - t0, reason=reason)
    print(f"\n{'; '.join(lines)}; {(time.perf_counter() - t0) / 60:.1f} min.\nResults: {path}\n"
          f"Reports: python -m common.report regenerates them from results/.")
    return path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0].startswith("--"):
        print(__doc__.strip() if argv and argv[0] in ("-h", "--help") else USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        reevaluate(argv[0], argv[1:])
    except (cfg.ConfigError, FileNotFoundError, json.JSONDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
