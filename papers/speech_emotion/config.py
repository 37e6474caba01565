"""Configuration of speech emotion recognition with a segment DNN and extreme learning machines (Han, Yu &
Tashev, Interspeech 2014). Defaults: the paper's recipe as far as it could be established offline (the
README lists which values come from the paper and which are our choices), on speaker-independent folds.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend; costs in REPORT.md):

  paper   python papers/speech_emotion/train.py --dataset=ravdess --seed=0
          RAVDESS speech, neutral / happy / sad / angry at normal intensity, 12 folds of one actress and
          one actor each (IEMOCAP's sessions are one woman and one man): for every fold, the DNN on the
          most energetic segments of the training utterances, the utterance statistics, then DNN alone,
          DNN-ELM, DNN-KELM, DNN-SVM and the frame-statistics SVM, hyper-parameters chosen by a grid
          search grouped by speaker inside the training fold. --dataset=urdu: 5 folds by speaker.
  quick   python papers/speech_emotion/train.py --preset=quick
          The same with 4 folds and 10 DNN epochs.
  smoke   python papers/speech_emotion/train.py --preset=smoke
          one utterance per speaker and class, 2 folds, 2 DNN epochs: seconds once the features are cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.lifecycle.config import ConfigError, RunConfig, param

DATASETS = ("ravdess", "urdu", "iemocap")
FOLDS = {"ravdess": 12, "urdu": 5, "iemocap": 5}


@dataclass(frozen=True)
class SpeechEmotionConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"dataset", "feature_cache"}
    # Renamed after runs were recorded (as the VAE's config names its hidden layer's units): RunConfig.RENAMED.
    RENAMED = {**RunConfig.RENAMED, "hidden": "hidden_units"}
    ONE_DEVICE_ONLY = "a small network per fold, fit on arrays whose last batch need not split over devices"

    dataset: str = param("ravdess", "ravdess (24 actors), urdu (29 speakers; speaker and class confounded) or "
                                    "iemocap (licence-gated)", choices=DATASETS)
    emotions: tuple[str, ...] = param(("neutral", "happy", "sad", "angry"), "the classes, in this order", distinct=2)
    ravdess_intensity: str = param("normal", "RAVDESS: normal or strong intensity", choices=("normal", "strong"))
    iemocap_improvised_only: bool = param(True, "IEMOCAP: only the improvised sessions' utterances")
    folds: int = param(0, "speaker-independent folds; 0: the corpus' (RAVDESS 12 actor pairs, URDU 5, IEMOCAP "
                          "5 sessions)")
    max_folds: int = param(0, "run only the first N folds (0: all); for smoke runs")
    max_per_speaker_and_class: int = param(0, "use only the first N utterances of each speaker in each class (0: all)")
    context: int = param(12, "frames on each side of a segment's centre: 25-frame segments (§2.1)", low=1)
    energy_fraction: float = param(0.1, "the DNN trains on this share of each training utterance's segments, "
                                        "those of highest energy (§2.1: the most energetic segments)", above=0, high=1)
    utterance_segments: str = param("all", "segments whose probabilities make the utterance statistics: all or "
                                           "energetic (the same share as for training)", choices=("all", "energetic"))
    threshold: float = param(0.2, "an utterance feature is the share of segments with P(k) above this (§2.2)",
                               above=0, below=1)
    hidden_units: tuple[int, ...] = param((256, 256, 256), "the DNN's hidden ReLU layers (§2.1: three of 256)", low=1)
    dnn_epochs: int = param(20, "passes over the training segments (not in the paper)", low=1)
    batch_size: int = param(128, "DNN minibatch (not in the paper)", low=1)
    learning_rate: float = param(1e-3, "Adam's learning rate for the DNN (not in the paper)", above=0)
    elm_hidden: int = param(120, "hidden units of the basic ELM (not verified: the public re-implementation's 120)",
                                low=1)
    # The grids the searches choose from: each value once.
    elm_c: tuple[float, ...] = param((0.01, 0.1, 1.0, 10.0, 100.0), "ELM ridge parameters C to choose from",
                                     above=0, distinct=1)
    kelm_c: tuple[float, ...] = param((0.01, 0.1, 1.0, 10.0, 100.0), "kernel ELM ridge parameters C",
                                      above=0, distinct=1)
    kelm_gamma: tuple[float, ...] = param((0.001, 0.01, 0.1, 1.0), "kernel ELM RBF widths gamma", above=0,
                                          distinct=1)
    svm_c: tuple[float, ...] = param((0.1, 1.0, 10.0, 100.0), "SVM C values (the baselines)", above=0, distinct=1)
    svm_gamma: tuple[float, ...] = param((0.001, 0.01, 0.1), "SVM RBF widths gamma (the baselines)", above=0,
                                         distinct=1)
    inner_folds: int = param(3, "speaker-grouped folds of the grid search inside each training fold", low=2)
    feature_cache: str = param("", "where frame features are cached, keyed by audio checksum and settings "
                                   "(empty: <runs_dir>/speech_emotion/features)")

    def automatic(self) -> dict:
        return {"folds": FOLDS[self.dataset]} if self.folds == 0 and self.dataset in FOLDS else {}

    def validate(self) -> None:
        super().validate()
        if self.folds < 2:  # after automatic(): 0 stands for the corpus' folds
            raise ConfigError(f"--folds must be at least 2 (or 0: the corpus'), got {self.folds}")

    @property
    def variant(self) -> str:
        return f"{self.dataset}-{len(self.emotions)}class"


PRESETS = {
    "quick": {"max_folds": 4, "dnn_epochs": 10},
    "smoke": {"max_folds": 2, "max_per_speaker_and_class": 1, "dnn_epochs": 2, "inner_folds": 2,
              "elm_c": (1.0,), "kelm_c": (1.0,), "kelm_gamma": (0.1,), "svm_c": (1.0,), "svm_gamma": (0.1,)},
}
