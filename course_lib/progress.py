"""A progress bar that shows itself only when the work will be slow (lesson 03: ``upscale`` queries in chunks).

``upscale`` renders its output in pieces (query chunks of a DIINN/LIIF/Meta-SR model, tiles of a convolutional or
3x3-decoder model). A bar for a 50 ms upscale is noise; for a 30 s one it is a courtesy. :class:`LazyBar` decides
after the first piece: the bar appears when asked (``progress=True``) or when the first piece's time times the
number of pieces predicts more than ``slow_s`` seconds; ``progress=False`` (``--quiet``, tests) never shows one.
"""

from __future__ import annotations

import time


class LazyBar:
    """A tqdm bar over ``total`` pieces, decided after the first piece (see the module docstring).

    Use as a context manager and call :meth:`update` after every piece. ``sync`` (e.g. ``torch.cuda.synchronize``)
    runs before the first piece is timed, so asynchronous devices are timed honestly. Notebook:
    03_feature_unfolding (why ``upscale`` works in chunks)."""

    def __init__(self, total: int, desc: str, unit: str, progress=None, slow_s: float = 3.0, sync=None):
        self.total, self.desc, self.unit, self.progress = int(total), desc, unit, progress
        self.slow_s, self.sync = slow_s, sync
        self.bar, self.done, self.t0 = None, 0, time.perf_counter()

    def __enter__(self) -> LazyBar:
        self.t0 = time.perf_counter()
        return self

    def update(self) -> None:
        """One piece is done: after the first, decide whether to show the bar; after the others, advance it."""
        self.done += 1
        if self.done == 1:
            if self.total > 1 and self.progress is not False:
                if self.sync is not None:
                    self.sync()
                if self.progress or (time.perf_counter() - self.t0) * self.total > self.slow_s:
                    from tqdm.auto import tqdm

                    self.bar = tqdm(total=self.total, initial=1, desc=self.desc, unit=self.unit)
        elif self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __exit__(self, *exc) -> None:
        self.close()
