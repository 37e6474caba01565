"""The metrics papers share: Parzen-window log-likelihood (`parzen`), segmentation errors (`segmentation`:
Rand, information and warping errors, pixel error), sample scores of generative models (`generative`:
score and Fréchet distance with a feature network) and the MNIST score network behind them
(`score_network`)."""
