"""Configuration of U-Net on the ISBI 2012 EM segmentation challenge (Ronneberger, Fischer & Brox 2015).
Defaults: the paper's recipe (§2-§3); where it is silent (learning rate, number of iterations, the
grey-value augmentation) our choices are listed under Deviations in the README.

Presets (reference hardware: the project's 2-core CPU, TensorFlow backend):

  paper   python papers/unet/train.py --fold=0 --seed=0
          572x572 tiles, 64 filters in the first level (31.0M parameters), 20,000 SGD steps of one
          tile: a GPU job (a step takes tens of seconds on the CPU).
  quick   python papers/unet/train.py --preset=quick --fold=0
          the same architecture with 16 filters in the first level (1/16 of the computation) on
          380x380 tiles (196x196 outputs), 1,500 steps (each fold's wall time: REPORT.md).
  smoke   python papers/unet/train.py --preset=smoke
          4 filters, 380x380 tiles, 2 steps, no test-volume prediction: seconds. Numbers mean nothing.

Evaluation: 5-fold cross-validation over the 30 training slices (`fold` 0-4 holds out slices
6 fold .. 6 fold + 5), since the challenge's test labels were never released.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.lifecycle.config import ConfigError, RunConfig, param
from papers.unet.model import output_size

N_SLICES, FOLDS = 30, 5


@dataclass(frozen=True)
class UNetConfig(RunConfig):
    RECIPE_NEUTRAL = RunConfig.RECIPE_NEUTRAL | {"fold", "data_workers", "predict_test", "eval_batch_size",
                                                 "warping_error"}
    # Renamed after runs were recorded (one name for the evaluation's batch in every paper): RunConfig.RENAMED.
    RENAMED = {**RunConfig.RENAMED, "eval_batch": "eval_batch_size"}

    fold: int = param(0, "held-out fold of the 5-fold split of the 30 training slices (0-4)", high=FOLDS - 1)
    tile: int = param(572, "input tile size; its output is tile - 184 for depth 4 (§2, Fig. 1: 572 -> 388)")
    filters: int = param(64, "filters of the first level, doubling at each of the 4 poolings (Fig. 1: 64)", low=1)
    dropout: float = param(0.5, "drop-out at the end of the contracting path (§3.1)", below=1)
    learning_rate: float = param(0.001, "SGD learning rate (not given in the paper; 0.01 and 0.003 collapsed to a "
                                        "constant prediction on the quick preset, README Deviations)", above=0)
    momentum: float = param(0.99, "SGD momentum (§3: 0.99, 'a large number of the previously seen training "
                                  "samples determine the update')", below=1)
    batch_size: int = param(1, "tiles per step (§3: a single image per batch, large tiles instead)", low=1)
    steps: int = param(20_000, "SGD steps (not given in the paper, which trained for 10 hours on a Titan GPU)", low=1)
    steps_per_epoch: int = param(100, "steps between evaluations, history rows and checkpoints", low=1)
    w0: float = param(10.0, "weight of the border term of the loss weights (§3, Eq. 2: w0 = 10)")
    sigma: float = param(5.0, "width of the border term in pixels (§3: sigma ~ 5)", above=0)
    elastic_sigma: float = param(10.0, "std of the coarse 3x3 grid's random displacements in pixels (§3.1: 10)")
    elastic_grid: int = param(3, "size of the coarse displacement grid (§3.1: 3 x 3)", low=1)
    augment: bool = param(True, "rotations, flips, shifts, elastic deformation and grey-value variation (§3.1)")
    val_every: int = param(10, "epochs between held-out evaluations (pixel error, V_rand at threshold 0.5)", low=1)
    eval_batch_size: int = param(2, "tiles per inference call of the overlap-tile prediction", low=1)
    warping_error: bool = param(True, "compute the warping error in the final evaluation (slow for a poor network)")
    predict_test: bool = param(True, "predict the 30 test slices and write the TIFF stack the challenge accepts")
    data_workers: int = param(2, "threads that augment tiles ahead of the train step", low=1)

    def validate(self) -> None:
        super().validate()
        if output_size(self.tile) is None:
            from papers.unet.model import check_tile

            try:
                check_tile(self.tile)
            except ValueError as e:
                raise ConfigError(f"--tile: {e}") from None

    @property
    def variant(self) -> str:
        return "unet-isbi2012"

    @property
    def held_out(self) -> list[int]:
        per = N_SLICES // FOLDS
        return list(range(self.fold * per, (self.fold + 1) * per))

    @property
    def training_slices(self) -> list[int]:
        return [i for i in range(N_SLICES) if i not in self.held_out]


PRESETS = {
    "quick": {"filters": 16, "tile": 380, "steps": 1500, "val_every": 5},
    "smoke": {"filters": 4, "tile": 380, "steps": 2, "steps_per_epoch": 2, "val_every": 1, "predict_test": False,
              "warping_error": False},
}
