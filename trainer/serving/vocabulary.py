"""A model's tokens as the bytes and text they add to an answer.

Log probabilities name each token by its text and bytes, and constrained decoding reads what
each token would write; both ask here. A byte-level BPE token (GPT-2, Llama 3, SmolLM2) is
mapped back through the byte alphabet, so a token holding part of a character still has its
exact bytes.
"""

from __future__ import annotations

import functools
import re
import threading

from tokenizers import decoders
from transformers import PreTrainedTokenizerBase

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
"""A SentencePiece byte-fallback token."""


@functools.cache
def _byte_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte, mapped back to the byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    stand_ins = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            stand_ins.append(256 + extra)
            extra += 1
    return {chr(stand_in): byte for byte, stand_in in zip(printable, stand_ins, strict=True)}


class TokenTexts:
    """What each token of a tokenizer writes: its bytes, its text, whether it is special."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tokenizer = tokenizer
        self.size = len(tokenizer)
        """Number of token ids the tokenizer knows."""
        added = getattr(tokenizer, "added_tokens_decoder", {})
        self.special_ids = frozenset(
            [*tokenizer.all_special_ids, *(i for i, token in added.items() if token.special)]
        )
        """Tokens an answer's text leaves out (end of turn, role markers)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._byte_level = isinstance(getattr(backend, "decoder", None), decoders.ByteLevel)
        self._bytes: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def decode(self, token_ids: list[int]) -> str:
        """The text of tokens as an answer shows it: special tokens left out, spaces as they are."""
        return str(
            self._tokenizer.decode(
                token_ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    def bytes_of(self, token_id: int) -> bytes:
        """The bytes the token adds to the text (none for a special token)."""
        found = self._bytes.get(token_id)
        if found is None:
            found = b"" if token_id in self.special_ids else self._read_bytes(token_id)
            with self._lock:
                self._bytes[token_id] = found
        return found

    def text_of(self, token_id: int) -> str:
        """The token's text; part of a character shows as U+FFFD."""
        return self.bytes_of(token_id).decode("utf-8", errors="replace")

    def whole_text(self, token_id: int) -> str | None:
        """The token's text when it is whole characters, else None (special, empty, partial)."""
        try:
            text = self.bytes_of(token_id).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text or None

    def _read_bytes(self, token_id: int) -> bytes:
        piece = self._tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str):
            return b""
        alphabet = _byte_alphabet()
        if self._byte_level and all(character in alphabet for character in piece):
            return bytes(alphabet[character] for character in piece)
        byte_token = _BYTE_TOKEN.fullmatch(piece)
        if byte_token:
            return bytes([int(byte_token.group(1), 16)])
        text = self._tokenizer.convert_tokens_to_string([piece])
        # SentencePiece marks a leading space with U+2581 and drops it at the start of a text.
        if piece.startswith("\u2581") and not text.startswith(" "):
            text = " " + text
        return str(text).encode("utf-8")
