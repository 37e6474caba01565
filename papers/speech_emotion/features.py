"""Han, Yu & Tashev 2014, §2: frame features, segments and utterance statistics.

Frames: 25 ms windows every 10 ms (400 and 160 samples at 16 kHz), no padding, so an utterance of N
samples has 1 + (N - 400) // 160 frames. Per frame:
  12 MFCCs (c1-c12 of 26 mel bands, librosa's filterbank and DCT over a Hamming-windowed 512-point
  power spectrum), the log energy of the frame, the pitch period (1 / F0 from Praat's autocorrelation
  pitch tracker through parselmouth; 0 where unvoiced) and the harmonics-to-noise ratio (Praat's
  cross-correlation harmonicity, dB; 0 where Praat leaves it undefined), and the deltas of those 15
  (librosa, a 9-frame regression window): 30 features.
Segments: the 25 frames around a frame (12 on each side), concatenated: 750 features, for every frame
with full context inside its utterance (a segment never reaches outside its utterance).
Utterance features (§2.2): for each emotion k, over the utterance's segments, the maximum, minimum and
mean of the DNN's P(k | segment) and the share of segments with P(k | segment) > threshold.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE, FRAME, HOP, N_FFT = 16_000, 400, 160, 512
N_MFCC, N_MELS, DELTA_WIDTH = 12, 26, 9
PITCH_FLOOR, PITCH_CEILING = 75.0, 600.0
NAMES = [*(f"mfcc{i}" for i in range(1, N_MFCC + 1)), "log_energy", "pitch_period", "hnr"]
FEATURES = [*NAMES, *(f"d_{n}" for n in NAMES)]


def frame_count(n_samples: int) -> int:
    return 0 if n_samples < FRAME else 1 + (n_samples - FRAME) // HOP


def frame_features(audio: np.ndarray) -> np.ndarray:
    """(frames, 30) features of a 16 kHz signal."""
    import librosa
    import parselmouth

    audio = np.asarray(audio, np.float64)
    n = frame_count(len(audio))
    if n <= DELTA_WIDTH // 2 * 2:
        raise ValueError(f"{len(audio)} samples give {n} frames, too few for the deltas (at least {DELTA_WIDTH})")
    frames = librosa.util.frame(audio, frame_length=FRAME, hop_length=HOP, axis=0)[:n]
    power = np.abs(np.fft.rfft(frames * np.hamming(FRAME), n=N_FFT)) ** 2
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS) @ power.T
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC + 1)[1:].T  # c0 left out
    log_energy = np.log(np.sum(frames**2, axis=1) + 1e-10)
    centres = (np.arange(n) * HOP + FRAME / 2) / SAMPLE_RATE
    sound = parselmouth.Sound(audio, sampling_frequency=SAMPLE_RATE)
    pitch = sound.to_pitch(time_step=HOP / SAMPLE_RATE, pitch_floor=PITCH_FLOOR, pitch_ceiling=PITCH_CEILING)
    f0 = _at(pitch.xs(), pitch.selected_array["frequency"], centres)
    period = np.where(f0 > 0, 1.0 / np.maximum(f0, 1e-9), 0.0)
    harmonicity = sound.to_harmonicity_cc(time_step=HOP / SAMPLE_RATE, minimum_pitch=PITCH_FLOOR)
    hnr = _at(harmonicity.xs(), harmonicity.values[0], centres)
    hnr = np.where(hnr < -100, 0.0, hnr)  # Praat writes -200 dB where the harmonicity is undefined
    static = np.column_stack([mfcc, log_energy, period, hnr])
    deltas = librosa.feature.delta(static, width=DELTA_WIDTH, order=1, axis=0)
    return np.concatenate([static, deltas], axis=1).astype(np.float32)


def _at(times: np.ndarray, values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The value of a Praat contour at the frame nearest each centre (outside its span: its edge frame)."""
    if len(times) == 0:
        return np.zeros(len(centres))
    step = times[1] - times[0] if len(times) > 1 else 1.0
    index = np.clip(np.round((centres - times[0]) / step).astype(int), 0, len(times) - 1)
    return np.asarray(values, np.float64)[index]


def segments(features: np.ndarray, context: int = 12) -> np.ndarray:
    """(frames - 2 context, (2 context + 1) * features): the frames around each frame with full context."""
    n, d = features.shape
    width = 2 * context + 1
    if n < width:
        return np.zeros((0, width * d), features.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(features, (width, d))[:, 0]
    return windows.reshape(n - width + 1, width * d)


def segment_energy(features: np.ndarray, context: int = 12) -> np.ndarray:
    """Each segment's energy: the mean over its frames of exp(log energy)."""
    energy = np.exp(features[:, NAMES.index("log_energy")].astype(np.float64))
    width = 2 * context + 1
    if len(energy) < width:
        return np.zeros(0)
    return np.convolve(energy, np.ones(width) / width, mode="valid")


def most_energetic(energy: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the `fraction` of segments with the highest energy (at least one), in time order."""
    keep = max(1, int(round(fraction * len(energy))))
    return np.sort(np.argsort(-energy, kind="stable")[:keep])


def utterance_features(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """(4 K,) statistics of one utterance's (segments, K) probabilities: per emotion its maximum, then
    minimum, mean and the share above `threshold` (§2.2), grouped by statistic."""
    p = np.asarray(probabilities, np.float64)
    return np.concatenate([p.max(0), p.min(0), p.mean(0), (p > threshold).mean(0)])


def frame_statistics(features: np.ndarray) -> np.ndarray:
    """The non-DNN baseline's utterance vector: mean, standard deviation, minimum and maximum of every
    frame feature over the utterance (120 values)."""
    f = np.asarray(features, np.float64)
    return np.concatenate([f.mean(0), f.std(0), f.min(0), f.max(0)])
