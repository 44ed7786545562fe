"""Token ids to text as they are generated, with OpenAI ``stop`` strings applied on the text.

Decoding each token alone is wrong for byte-level BPE (a character may span tokens) and for
tokenizers that drop a word's leading space at the start of a decode. :class:`TextStream` decodes a
window that starts one token before the new ones and emits only the growth, holding back text that
ends in a partial character (the vLLM/TGI "prefix offset" technique). Stop strings are matched on
that text; text that could still become a stop string is held back until it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"  # what a decoder yields for an incomplete UTF-8 sequence


class TextStream:
    """Feed token ids with :meth:`push`; it returns the text that may be shown now."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        self._prefix = 0  # decode window start
        self._read = 0  # ids before this are already turned into text
        self._held = ""  # decoded text not yet emitted (may begin a stop string)
        self.text = ""  # everything emitted so far
        self.stopped = False  # a stop string matched: the row must end

    def push(self, token: int) -> str:
        """Add one generated token; returns newly visible text ('' while a character or a possible
        stop string is incomplete). After a stop string matched, :attr:`stopped` is True."""
        if self.stopped:
            return ""
        self._ids.append(token)
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        if len(after) <= len(before) or after.endswith(REPLACEMENT):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return self._release(after[len(before):])

    def finish(self) -> str:
        """The end of generation: release what was held back (a partial character stays as the
        replacement character, as a full decode would show it)."""
        if self.stopped:
            return ""
        before = self._decode(self._ids[self._prefix:self._read])
        after = self._decode(self._ids[self._prefix:])
        tail = after[len(before):] if len(after) > len(before) else ""
        self._read = len(self._ids)
        out = self._release(tail)
        if not self.stopped:
            out += self._held
            self.text += self._held
            self._held = ""
        return out

    def _release(self, new: str) -> str:
        buf = self._held + new
        cut = min((i for i in (buf.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            self.text += buf[:cut]
            return buf[:cut]
        keep = _partial_stop(buf, self._stop)
        out, self._held = buf[:len(buf) - keep], buf[len(buf) - keep:]
        self.text += out
        return out


def _partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that is the beginning of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
