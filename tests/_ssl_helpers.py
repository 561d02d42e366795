"""Shared helpers of the SSL extractor tests: spec section 6 toy data, interrupts."""

import numpy as np

from skfeat._engine import SSLNet


def toy_vectors(seed, n=1024):
    """Spec 6.2 toy data: a shifted 16-dim class template and a 3-dim colour.

    The colour is a random direction scaled by the intrinsic brightness beta
    in [0.5, 1.5], the attribute that the brightness jitter masks.
    """
    rng = np.random.RandomState(seed)
    templates = rng.randn(4, 16)
    labels = rng.randint(4, size=n)
    shifts = rng.randint(16, size=n)
    shapes = np.stack([np.roll(templates[c], s) for c, s in zip(labels, shifts)])
    beta = rng.uniform(0.5, 1.5, n)
    hue = rng.uniform(0.5, 1.5, (n, 3))
    colour = beta[:, None] * hue / np.linalg.norm(hue, axis=1, keepdims=True)
    return np.hstack([shapes, colour]).astype(np.float32), labels, beta


def interrupt_at_epoch(monkeypatch, epoch):
    """Raise KeyboardInterrupt at the first batch of ``epoch`` (counted from 1)."""

    on_batch_begin = SSLNet.on_batch_begin

    def interrupting(self, net, batch=None, training=False, **kwargs):
        on_batch_begin(self, net, batch=batch, training=training, **kwargs)
        if training and len(net.history) == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(SSLNet, "on_batch_begin", interrupting)
