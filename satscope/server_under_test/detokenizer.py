"""A request's output text, built token by token, with stop strings.

Text that could be the start of a stop string is held back until it is known not to be one, so a
streamed response never shows part of a stop string.
"""

from __future__ import annotations

from satscope.server_under_test.tokenizer import IncrementalDecoder

__all__ = ["StreamingText"]


class StreamingText:
    def __init__(self, decoder: IncrementalDecoder, stop: tuple[str, ...]) -> None:
        self._decoder = decoder
        self._stop = stop
        self._holdback = max((len(s) for s in stop), default=1) - 1
        self.text = ""
        self._emitted = 0
        self._stopped = False

    def add(self, token_id: int) -> tuple[str, bool]:
        """Append a token; returns (text now safe to emit, whether a stop string was hit)."""
        search_from = max(0, len(self.text) - self._holdback)
        self.text += self._decoder.decode(token_id)
        if self._stop:
            hits = [i for s in self._stop if (i := self.text.find(s, search_from)) >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                self._stopped = True
                return self._take(len(self.text)), True
        return self._take(max(self._emitted, len(self.text) - self._holdback)), False

    def finish(self) -> str:
        """The held-back rest (and any incomplete character), once the request ended for another reason."""
        if not self._stopped:  # after a stop string, whatever the decoder holds lies beyond it
            self.text += self._decoder.flush()
        return self._take(len(self.text))

    def _take(self, end: int) -> str:
        delta, self._emitted = self.text[self._emitted : end], max(self._emitted, end)
        return delta
