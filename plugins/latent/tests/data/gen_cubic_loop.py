"""Generates cubic_loop_ref.npz: the looping cubic latent walk of the official gen_video.py,
computed with SciPy, for the test `looping_cubic_matches_scipy` (tests/latent_ops.rs).

The interpolation below follows gen_interp_video() of NVlabs/stylegan3 gen_video.py: the
keyframes of one grid cell are tiled 2*wraps+1 times at x = -K*wraps .. K*(wraps+1)-1 and
sampled with interp1d(kind='cubic') at frame_idx / w_frames.

Run with numpy and scipy installed:  python gen_cubic_loop.py
"""
import numpy as np
import scipy.interpolate

K, wraps, w_frames = 3, 2, 5
# Two grid cells (groups), each with K keyframes of a [2, 4] W+ latent, float32.
rng = np.random.RandomState(123)
keys = rng.randn(2, K, 2, 4).astype(np.float32)

frames = np.zeros((K * w_frames, 2, 2, 4), dtype=np.float64)
for g in range(2):
    x = np.arange(-K * wraps, K * (wraps + 1))
    y = np.tile(keys[g], [wraps * 2 + 1, 1, 1])
    interp = scipy.interpolate.interp1d(x, y, kind='cubic', axis=0)
    for f in range(K * w_frames):
        frames[f, g] = interp(f / w_frames)

np.savez('cubic_loop_ref.npz', keys=keys.reshape(2 * K, 2, 4), frames=frames.reshape(K * w_frames * 2, 2, 4))
print('scipy', scipy.__version__, 'numpy', np.__version__)
