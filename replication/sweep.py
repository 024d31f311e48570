"""The sweep every experiment runs: a measurement at each width, for several seeds, from
named random streams."""
from __future__ import annotations

import functools
import sys
from typing import Callable

import jax
import numpy as np
from tqdm import tqdm


def progress(total: int, desc: str):
    """A progress bar on stderr, shown when stderr is a terminal."""
    return tqdm(total=total, desc=desc, disable=None, file=sys.stderr, leave=False,
                dynamic_ncols=True)


def network_key(seed: int, width: int, replicate: int) -> jax.Array:
    """The PRNG key of one network: a function of the run's seed, its width and replicate.

    Keys use JAX's ``rbg`` generator (XLA's RngBitGenerator), which draws the
    wide networks' weights 1.6x faster than the default threefry on CPU;
    the numbers are deterministic for a given key and machine.
    """
    root = jax.random.key(seed, impl="rbg")
    return jax.random.fold_in(jax.random.fold_in(root, width), replicate)


class Streams:
    """The named random streams of one run: each name is a fixed offset from the run's seed.

    ``streams.network(name, width, replicate)`` is the key of one network of
    that stream; ``streams.key(name)`` a plain key (data, directions);
    ``streams.numpy(name)`` a numpy generator. An experiment names its streams
    once, in one table of offsets, so two studies draw independent numbers
    only when their names say so, and a study reads which stream it draws
    from. The offsets are fixed numbers, not positions: adding a stream never
    changes another's draws.
    """

    def __init__(self, seed: int, offsets: dict[str, int]):
        self.seed = int(seed)
        self.offsets = dict(offsets)

    def offset(self, name: str) -> int:
        if name not in self.offsets:
            raise KeyError(f"no random stream {name!r}; this run has {', '.join(self.offsets)}")
        return self.seed + self.offsets[name]

    def network(self, name: str, width: int, replicate: int) -> jax.Array:
        """The key of network ``replicate`` at ``width`` in stream ``name`` (``network_key``)."""
        return network_key(self.offset(name), width, replicate)

    def key(self, name: str) -> jax.Array:
        """``jax.random.PRNGKey`` of stream ``name`` (threefry, for data and directions)."""
        return jax.random.PRNGKey(self.offset(name))

    def numpy(self, name: str) -> np.random.Generator:
        return np.random.default_rng(self.offset(name))

    def _identity(self) -> tuple:
        return self.seed, tuple(sorted(self.offsets.items()))

    def __eq__(self, other):
        return isinstance(other, Streams) and self._identity() == other._identity()

    def __hash__(self):
        return hash(self._identity())

    def __repr__(self):
        return f"Streams(seed={self.seed}, offsets={self.offsets})"


def measured_once(measure: Callable):
    """``measure(config, streams)`` computed once for a run, for the later studies that read it.

    A study whose findings rest on another study's networks (the quality of
    lazy's trained ladder, digits' table of the kernels and trained networks)
    calls that study's ``measure`` again and gets the same result without
    training twice. The result is a function of the config and the streams,
    which fix every random number, so keeping the last one is safe.
    """
    return functools.lru_cache(maxsize=1)(measure)


def over_widths(widths, n_seeds: int, measure: Callable[[int, int], float],
                desc: str = "") -> np.ndarray:
    """``measure(width, replicate)`` for every width and replicate, shape ``(n_widths, n_seeds)``."""
    out = np.empty((len(widths), n_seeds))
    with progress(len(widths) * n_seeds, desc) as bar:
        for i, w in enumerate(widths):
            for s in range(n_seeds):
                out[i, s] = measure(w, s)
                bar.update()
    return out
